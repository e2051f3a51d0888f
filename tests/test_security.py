"""Attack-graph generator: valid, reachable, rewards and features as specified (brute-force checks)."""

import itertools

import jax.numpy as jnp
import numpy as np
import pytest

from gsiirl.games.security import (SecurityReward, feature_scale, generate_attack_graph, raw_true_parameters,
                                   reward_features, security_game)


def _reachable_nodes(graph, allowed):
    seen, frontier = {graph.entry}, [graph.entry]
    while frontier:
        node = frontier.pop()
        for i, j in zip(graph.sources, graph.targets):
            if i == node and j in allowed and j not in seen:
                seen.add(int(j))
                frontier.append(int(j))
    return seen


@pytest.mark.parametrize("seed,nodes,edges", [(0, 8, 10), (3, 5, 4), (7, 6, 20)])
def test_graph_structure(seed, nodes, edges):
    graph = generate_attack_graph(seed, nodes, edges)
    pairs = list(zip(graph.sources.tolist(), graph.targets.tolist()))
    assert len(pairs) == edges == len(set(pairs))
    assert all(i != j and j != graph.entry for i, j in pairs)
    assert _reachable_nodes(graph, set(range(nodes))) == set(range(nodes))
    assert graph.node_values[graph.entry] == 0.0
    assert np.all((graph.success_probs > 0) & (graph.success_probs <= 1))
    again = generate_attack_graph(seed, nodes, edges)
    assert pairs == list(zip(again.sources.tolist(), again.targets.tolist()))
    assert np.array_equal(graph.node_values, again.node_values)


def test_default_is_eight_nodes_ten_edges():
    graph = generate_attack_graph(1)
    game = security_game(graph)
    assert (graph.num_nodes, graph.num_edges) == (8, 10)
    assert game.joint_shape == (256, 10, 10) and game.is_sparse


def test_transitions_and_rewards_match_hand_simulation():
    graph = generate_attack_graph(2, 4, 5)
    game = security_game(graph, horizon=3, discount=0.9)
    dense = np.asarray(game.to_dense().dynamics.transitions)
    for state, block, attack in itertools.product(range(16), range(5), range(5)):
        i, j = int(graph.sources[attack]), int(graph.targets[attack])
        p = float(graph.success_probs[attack])
        expected = np.zeros(16)
        can = (state >> i) & 1 and not (state >> j) & 1 and block != attack
        if can:
            expected[state | (1 << j)] += p
            expected[state] += 1 - p
        else:
            expected[state] = 1.0
        np.testing.assert_allclose(dense[state, block, attack], expected, atol=1e-6)
        r_e = (p * graph.node_values[j] if can else 0.0) - graph.attack_costs[attack]
        assert game.expert_reward[state, block, attack] == pytest.approx(r_e, abs=1e-5)
        assert game.learner_oracle[state, block, attack] == pytest.approx(-r_e, abs=1e-5)
        assert game.learner_reward[state, block] == pytest.approx(-graph.block_costs[block], abs=1e-6)
    assert float(game.initial[1 << graph.entry]) == 1.0


def test_reachable_states_are_the_entry_connected_sets():
    graph = generate_attack_graph(5, 5, 7)
    game = security_game(graph)
    successors = np.asarray(game.dynamics.successor_states)
    probs = np.asarray(game.dynamics.successor_probs)
    seen, frontier = {graph.initial_state}, [graph.initial_state]
    while frontier:
        state = frontier.pop()
        for nxt in np.unique(successors[state][probs[state] > 0]):
            if int(nxt) not in seen:
                seen.add(int(nxt))
                frontier.append(int(nxt))
    expected = set()
    for state in range(32):
        members = {n for n in range(5) if (state >> n) & 1}
        if graph.entry in members and _reachable_nodes(graph, members) == members:
            expected.add(state)
    assert seen == expected
    assert (1 << 5) - 1 in seen  # everything can be compromised eventually


def test_features_represent_true_rewards_inside_unit_ball():
    graph = generate_attack_graph(0)
    game = security_game(graph)
    model = SecurityReward(graph)
    theta_l, theta_e = model.true_parameters()
    assert float(jnp.linalg.norm(theta_e)) == pytest.approx(0.9, rel=1e-5)
    np.testing.assert_allclose(model.table(theta_e), game.expert_reward, atol=1e-5)
    np.testing.assert_allclose(model.table(theta_l), game.learner_oracle, atol=1e-5)
    dense = reward_features(graph)
    assert dense.shape == (256, 10, 10, 8 + 20)
    theta = np.random.default_rng(0).normal(size=28).astype(np.float32)
    np.testing.assert_allclose(model.table(jnp.asarray(theta)), model.scale * np.tensordot(dense, theta, 1), atol=1e-4)
    learner_raw, expert_raw = raw_true_parameters(graph)
    np.testing.assert_allclose(learner_raw, -expert_raw)
    assert feature_scale(graph, 0.5) == pytest.approx(np.linalg.norm(expert_raw) / 0.5)


def test_large_graph_uses_structured_model():
    graph = generate_attack_graph(0, 13, 15)
    with pytest.raises(ValueError, match="dense features"):
        reward_features(graph)
    model = SecurityReward(graph)
    assert model.table(jnp.zeros(model.num_params)).shape == (2 ** 13, 15, 15)


@pytest.mark.parametrize("kwargs,field", [({"num_nodes": 1}, "num_nodes"), ({"num_nodes": 5, "num_edges": 3}, "num_edges"),
                                          ({"num_nodes": 4, "num_edges": 10}, "num_edges"),
                                          ({"success_range": (0.0, 2.0)}, "success_range")])
def test_bad_arguments(kwargs, field):
    with pytest.raises(ValueError, match=field):
        generate_attack_graph(0, **kwargs)


def test_unit_runner_takes_partial_options_and_names_bad_ones():
    from gsiirl.experiments import security as experiment

    run = experiment.make_unit_runner({"nodes": 5, "edges": 6, "horizon": 4})
    result = run("marl", 0, 1, lambda k: None)
    # the overrides reached the game: the same numbers as the baseline on the 5-node, horizon-4 instance
    options = dict(experiment.DEFAULT_OPTIONS, nodes=5, edges=6, horizon=4)
    _, game, _ = experiment.build_instance(options, 0)
    assert game.num_states == 2 ** 5 and game.horizon == 4
    from gsiirl.algorithms.gsiirl import marl

    expected = marl(game, equilibrium=options["equilibrium"], temperature=options["temperature"],
                    iterations=options["iterations"])
    assert result["learner_return"] == pytest.approx([expected["learner_return"]], rel=1e-6)
    assert result["expert_return"] == pytest.approx([expected["expert_return"]], rel=1e-6)
    with pytest.raises(ValueError, match="option node_count: unknown"):
        experiment.make_unit_runner({"node_count": 5})
    with pytest.raises(ValueError, match="option marl_solver"):
        experiment.make_unit_runner({"marl_solver": "magic"})


def test_experiments_stage_iterations_reach_the_long_solve():
    """The experiment's 10 stage iterations (+ Newton) give the equilibrium of a 200-iteration solve, for
    the true rewards and for a random learned pair (the basis of its ``iterations`` default)."""
    import jax

    from gsiirl.experiments import security as experiment
    from gsiirl.solvers.equilibrium import solve_equilibrium

    assert experiment.DEFAULT_OPTIONS["iterations"] == 10
    _, game, model = experiment.build_instance(experiment.DEFAULT_OPTIONS, 1)
    theta_l, theta_e = model.init(jax.random.PRNGKey(3), 1.0), model.init(jax.random.PRNGKey(4), 1.0)
    pairs = [(game.learner_true_reward, game.expert_reward),
             (game.learner_reward_with(model.table(theta_l)), model.table(theta_e))]
    for learner, expert in pairs:
        short = solve_equilibrium(game, learner, expert, iterations=10)
        long = solve_equilibrium(game, learner, expert, iterations=200)
        assert float(jnp.max(short.residual)) < 1e-5
        np.testing.assert_allclose(short.policy.learner, long.policy.learner, atol=1e-5)
        np.testing.assert_allclose(short.policy.expert, long.policy.expert, atol=1e-5)


def test_security_page_names_every_stored_metric():
    """docs/security.md, "Results schema": every metric a GSIIRL, MA-IRL or MARL unit stores is named there."""
    import re
    from pathlib import Path

    from gsiirl.experiments import security

    page = (Path(__file__).resolve().parents[1] / "docs" / "security.md").read_text()
    named = set(re.findall(r"`([a-z_]+)`", page.split("## Results schema", 1)[1]))
    run = security.make_unit_runner({"nodes": 3, "horizon": 2, "iterations": 2, "num_trajectories": 8,
                                     "num_spsa_samples": 1})
    stored = set()
    for method in ("gsiirl", "ma-irl", "marl"):
        stored |= set(run(method, 0, 1, lambda k: None))
    assert sorted(stored - named) == []
