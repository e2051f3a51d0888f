"""HRI environment: dynamics and rewards against hand-computed steps; Monte-Carlo μ vs exact μ."""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsiirl.experiments import results_file
from gsiirl.games.continuous import feature_expectations, rollout
from gsiirl.games.hri import HRIState, make_hri_game, segment_min_distance, true_parameters, velocity_table
from gsiirl.solvers.maddpg import init_state, make_policy, policy_logits


def _state(robot, human, ra=False, ha=False):
    return HRIState(jnp.asarray(robot, jnp.float32), jnp.asarray(human, jnp.float32),
                    jnp.asarray(ra), jnp.asarray(ha))


def _action(vx, vy, levels=5, max_speed=0.1):
    values = np.linspace(-max_speed, max_speed, levels)
    return int(np.argmin(abs(values - vx)) * levels + np.argmin(abs(values - vy)))


def test_velocity_table_maps_actions_to_grid():
    table = np.asarray(velocity_table(0.1, 5))
    assert table.shape == (25, 2)
    np.testing.assert_allclose(table[_action(0.1, 0.05)], [0.1, 0.05], atol=1e-7)
    np.testing.assert_allclose(table[_action(-0.1, 0.0)], [-0.1, 0.0], atol=1e-7)


def test_step_and_rewards_hand_computed():
    game = make_hri_game()
    s = _state([0.0, 0.0], [0.3, 0.0])
    la, ea = jnp.asarray([_action(0.05, 0.1)]), jnp.asarray([_action(-0.1, 0.0)])
    nxt, done = game.step(s, la, ea)
    np.testing.assert_allclose(nxt.robot, [0.05, 0.1], atol=1e-6)
    np.testing.assert_allclose(nxt.human, [0.2, 0.0], atol=1e-6)
    assert not bool(done)
    # r_li = -||(0, 0.5) - (0.05, 0.1)||
    assert float(game.learner_independent_reward(s, la, ea, nxt)) == pytest.approx(-math.hypot(0.05, 0.4), abs=1e-6)
    # closest approach during the step: offset (-0.3, 0) + s*(0.15, 0.1), s=1 -> (-0.15, 0.1), |.|=0.1803 > 0.15
    d_min = math.hypot(0.15, 0.1)
    assert float(segment_min_distance(s.robot, s.human, nxt.robot, nxt.human)) == pytest.approx(d_min, abs=1e-6)
    # human at full speed: no slowness, no collision -> r_ld = 0; r_e = -||(-0.5,0)-(0.2,0)|| = -0.7
    assert float(game.learner_dependent_reward(s, la, ea, nxt)) == pytest.approx(0.0, abs=1e-6)
    assert float(game.expert_reward(s, la, ea, nxt)) == pytest.approx(-0.7, abs=1e-6)
    soft = 1 / (1 + math.exp(-(0.15 - d_min) / 0.02))
    proximity = math.exp(-(math.hypot(0.15, 0.1) ** 2) / (2 * 0.25**2))
    np.testing.assert_allclose(game.learner_features(s, la, ea, nxt), [-soft, -0.0, -proximity], atol=1e-6)
    np.testing.assert_allclose(game.expert_features(s, la, ea, nxt), [-0.7, -soft, -1.0], atol=1e-6)


def test_collision_and_slowness_penalties():
    game = make_hri_game()
    s = _state([0.0, 0.0], [0.2, 0.0])
    la, ea = jnp.asarray([_action(0.1, 0.0)]), jnp.asarray([_action(-0.05, 0.0)])  # meet: 0.1 vs 0.15
    nxt, _ = game.step(s, la, ea)
    # collision (distance 0.05 < 0.15) -> -1; human at half speed -> slowness 0.5 * 0.2 = 0.1
    assert float(game.learner_dependent_reward(s, la, ea, nxt)) == pytest.approx(-1.1, abs=1e-6)
    assert float(game.expert_reward(s, la, ea, nxt)) == pytest.approx(-math.hypot(0.65, 0) - 0.5, abs=1e-6)
    # tunnelling: both end 0.2 apart on the other side, but passed through each other mid-step
    s2 = _state([0.0, 0.0], [0.1, 0.0])
    la2, ea2 = jnp.asarray([_action(0.1, 0.0)]), jnp.asarray([_action(-0.1, 0.0)])
    nxt2, _ = game.step(s2, la2, ea2)
    assert float(jnp.linalg.norm(nxt2.robot - nxt2.human)) == pytest.approx(0.1, abs=1e-6)
    assert float(segment_min_distance(s2.robot, s2.human, nxt2.robot, nxt2.human)) == pytest.approx(0.0, abs=1e-6)


def test_arrival_parks_and_terminates():
    game = make_hri_game()
    s = _state([0.0, 0.42], [-0.5, 0.0], ha=True)
    la, ea = jnp.asarray([_action(0.0, 0.1)]), jnp.asarray([_action(0.1, 0.1)])
    nxt, done = game.step(s, la, ea)
    np.testing.assert_allclose(nxt.robot, [0.0, 0.52], atol=1e-6)  # within 0.05 of (0, 0.5)
    np.testing.assert_allclose(nxt.human, [-0.5, 0.0], atol=1e-6)  # parked: action ignored
    assert bool(nxt.robot_arrived) and bool(done)
    again, _ = game.step(nxt, la, ea)
    np.testing.assert_allclose(again.robot, [0.0, 0.52], atol=1e-6)


def test_arena_clips_positions():
    game = make_hri_game({"arena_half_width": 1.0})
    s = _state([0.95, 0.0], [0.0, -0.98])
    nxt, _ = game.step(s, jnp.asarray([_action(0.1, 0.0)]), jnp.asarray([_action(0.0, -0.1)]))
    np.testing.assert_allclose(nxt.robot, [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(nxt.human, [0.0, -1.0], atol=1e-6)


def test_reset_ranges_and_vmapped_steps():
    game = make_hri_game()
    states = jax.vmap(game.reset)(jax.random.split(jax.random.PRNGKey(0), 4096))
    r, h = np.asarray(states.robot), np.asarray(states.human)
    assert r[:, 0].min() >= -0.25 and r[:, 0].max() <= 0.25 and r[:, 1].min() >= -0.4 and r[:, 1].max() <= 0.5
    assert h[:, 0].min() >= 0.4 and h[:, 0].max() <= 0.5 and abs(h[:, 1]).max() <= 0.25
    actions = jnp.zeros((4096, 1), jnp.int32)
    nxt, done = jax.jit(jax.vmap(game.step))(states, actions + 12, actions + 12)  # action 12 = (0, 0)
    np.testing.assert_allclose(nxt.robot, states.robot)
    assert done.shape == (4096,)


def test_bad_options_raise():
    with pytest.raises(ValueError, match="safe_distance"):
        make_hri_game({"safe_distance": -1.0})
    with pytest.raises(ValueError, match="unknown"):
        make_hri_game({"no_such_option": 1})


def test_true_parameters_reproduce_rewards_up_to_soft_collision():
    game = make_hri_game()
    theta_l, theta_e = true_parameters()
    s = _state([0.0, 0.0], [0.6, 0.0])
    la, ea = jnp.asarray([_action(0.0, 0.1)]), jnp.asarray([_action(-0.05, 0.0)])
    nxt, _ = game.step(s, la, ea)
    assert float(game.learner_features(s, la, ea, nxt) @ theta_l) == pytest.approx(
        float(game.learner_dependent_reward(s, la, ea, nxt)), abs=1e-4)
    assert float(game.expert_features(s, la, ea, nxt) @ theta_e) == pytest.approx(
        float(game.expert_reward(s, la, ea, nxt)), abs=1e-4)


def test_monte_carlo_feature_expectations_match_exact_enumeration():
    """Small discretised version: fixed start, 4 (diagonal) actions per agent, T = 2 -> 16^2 joint paths.

    Both agents start one diagonal step from their goals, so some paths terminate after the first
    step (masking is exercised) and the agents are close enough for the proximity feature to matter.
    """
    options = dict(velocity_levels=2, horizon=2, discount=0.9, robot_start_low=(-0.1, 0.4),
                   robot_start_high=(-0.1, 0.4), human_start_low=(-0.4, 0.1), human_start_high=(-0.4, 0.1))
    game = make_hri_game(options)
    state = init_state(jax.random.PRNGKey(3), game)
    actor = [(w, b) for w, b in state.actor[:-1]] + [(state.actor[-1][0] * 100.0, state.actor[-1][1])]
    # exact: enumerate every joint action sequence (vectorised over the frontier of paths).
    s0 = game.reset(jax.random.PRNGKey(0))
    states = jax.tree_util.tree_map(lambda x: x[None], s0)
    prob, alive = jnp.ones(1), jnp.ones(1)
    mu_l, mu_e = jnp.zeros(3), jnp.zeros(3)
    pairs = jnp.asarray(list(itertools.product(range(4), range(4))))  # 16 joint actions
    @jax.jit
    def expand(states, prob, alive, t):
        obs = jax.vmap(lambda st: jnp.stack(game.observations(st)))(states)  # [P, 2, 8]
        p = jax.nn.softmax(policy_logits(game, actor, obs), axis=-1)  # [P, 2, 4]
        rep = lambda x: jnp.repeat(x, 16, axis=0)
        states_rep = jax.tree_util.tree_map(rep, states)
        la, ea = jnp.tile(pairs[:, :1], (prob.shape[0], 1)), jnp.tile(pairs[:, 1:], (prob.shape[0], 1))
        nxt, done = jax.vmap(game.step)(states_rep, la, ea)
        q = rep(prob) * (p[:, 0, :][:, pairs[:, 0]] * p[:, 1, :][:, pairs[:, 1]]).reshape(-1)
        weight = (q * rep(alive) * game.discount**t)[:, None]  # t is traced: γ^t
        return nxt, q, rep(alive) * (1.0 - done), jnp.sum(weight * jax.vmap(game.learner_features)(
            states_rep, la, ea, nxt), axis=0), jnp.sum(weight * jax.vmap(game.expert_features)(states_rep, la, ea, nxt),
                                                       axis=0)

    for t in range(game.horizon):
        states, prob, alive, dl, de = expand(states, prob, alive, t)
        mu_l, mu_e = mu_l + dl, mu_e + de
    np.testing.assert_allclose(float(jnp.sum(prob)), 1.0, atol=1e-5)
    assert 0.0 < float(jnp.sum(prob * (1 - alive))) < 1.0  # some paths terminated early
    data = jax.jit(lambda k: rollout(k, game, make_policy(game, actor), 20000))(jax.random.PRNGKey(1))
    mc_l, mc_e = feature_expectations(game, data)
    np.testing.assert_allclose(mc_l, mu_l, atol=0.01)
    np.testing.assert_allclose(mc_e, mu_e, atol=0.01)
    assert np.abs(mu_l).max() > 0.05  # the test is not trivially comparing zeros


def test_experiment_options_are_validated_and_figure_is_written(tmp_path):
    from gsiirl.experiments import hri as experiment

    with pytest.raises(ValueError, match="hypergradient"):
        experiment.make_unit_runner({"hypergradient": "exact"})
    with pytest.raises(ValueError, match="unknown"):
        experiment.make_unit_runner({"no_such_option": 1})
    for bad in (0, 2.5, "many"):
        with pytest.raises(ValueError, match="seed_batch"):
            experiment.make_group_runner({"seed_batch": bad})
    curve = {"learner_return": [-5.0, -3.0, -2.0], "expert_return": [-9.0, -6.0, -4.0],
             "collision_rate": [0.0, 0.3, 0.1], "goal_rate": [0.0, 0.5, 0.9]}
    trajectory = {"trajectory_robot_x": [0.0, 0.0, 0.0], "trajectory_robot_y": [-0.4, -0.3, -0.2],
                  "trajectory_human_x": [0.45, 0.35, 0.25], "trajectory_human_y": [0.0, 0.0, 0.0]}
    results = {"config": {"options": {}}, "methods": {
        "gsiirl": {"seeds": {"0": {**curve, **trajectory}}},
        "marl": {"seeds": {"0": {k: v[-1:] for k, v in curve.items()}}}}}
    paths = experiment.make_figure(results, tmp_path)
    assert len(paths) == 1 and paths[0].exists() and paths[0].stat().st_size > 10_000
    for block in results["methods"].values():
        block["final"] = results_file.summarize(block["seeds"])
    table = experiment.summary(results).splitlines()  # what `gsiirl run hri` prints
    assert "robot return" in table[0] and "collision rate" in table[0] and "goal rate" in table[0]
    # one seed: the mean alone (a std over one value would print a meaningless ± 0.000)
    assert table[1].split()[:3] == ["gsiirl", "-2.000", "-4.000"] and "0.900" in table[1] and "±" not in table[1]


def test_sample_outcomes_check_collisions_segment_wise_and_goal_arrival():
    from gsiirl.experiments import hri as experiment

    options = {**experiment.DEFAULT_OPTIONS, "safe_distance": 0.15, "goal_radius": 0.05,
               "robot_goal": [0.0, 0.5], "human_goal": [-0.5, 0.0]}
    # Seed 0: the agents swap sides through the same point; both endpoints are 0.4 apart, but
    # mid-step they meet (a collision only a segment-wise check sees). Both reach their goals.
    crossing = {"trajectory_robot_x": [0.0, 0.0, 0.0], "trajectory_robot_y": [-0.2, 0.2, 0.5],
                "trajectory_human_x": [0.0, 0.0, -0.5], "trajectory_human_y": [0.2, -0.2, 0.0]}
    # Seed 1: far apart all the time, both arrive exactly on their goals.
    safe = {"trajectory_robot_x": [0.3, 0.0], "trajectory_robot_y": [0.5, 0.5],
            "trajectory_human_x": [-0.5, -0.5], "trajectory_human_y": [-0.3, 0.0]}
    # Seed 2: safe, but the human stops 0.0707 from its goal (outside the 0.05 disc).
    short = {**safe, "trajectory_human_x": [-0.5, -0.55], "trajectory_human_y": [-0.3, -0.05]}
    outcomes = experiment.sample_outcomes({"2": short, "0": crossing, "1": safe}, options)
    assert list(outcomes) == ["0", "1", "2"]
    assert outcomes["0"]["min_distance"] < 1e-6 and not outcomes["0"]["safe"] and outcomes["0"]["both_goals"]
    assert outcomes["1"]["safe"] and outcomes["1"]["both_goals"]
    np.testing.assert_allclose(outcomes["1"]["min_distance"], np.hypot(0.5, 0.5), rtol=1e-6)
    assert outcomes["2"]["safe"] and not outcomes["2"]["both_goals"]
    # Figure 3 (f) draws the distance along the same straight motion: its minimum is the segment-wise one
    # (0 for the crossing, where both step ends are 0.4 apart), its step-end values are the step ends'.
    for seed, outcome in outcomes.items():
        times, distances = experiment.within_step_distances(outcome["robot"], outcome["human"])
        assert np.all(np.diff(times) > 0) and times[0] == 0 and times[-1] == len(outcome["robot"]) - 1
        np.testing.assert_allclose(distances.min(), outcome["min_distance"], atol=1e-6)
        ends = np.isin(times, np.arange(len(outcome["robot"])))
        np.testing.assert_allclose(distances[ends], np.linalg.norm(outcome["robot"] - outcome["human"], axis=1))
    times, distances = experiment.within_step_distances(outcomes["0"]["robot"], outcomes["0"]["human"])
    np.testing.assert_allclose(np.interp(0.5, times, distances), 0.0, atol=1e-12)


def test_unit_runner_adds_the_retrained_evaluation_paired_with_marl():
    from gsiirl.experiments import hri as experiment

    small = {"horizon": 5, "hidden": 8, "num_envs": 4, "finetune_cycles": 1, "updates_per_cycle": 2,
             "buffer_cycles": 2, "minibatch_size": 16, "warmup_cycles": 2, "data_episodes": 8,
             "evaluation_episodes": 8, "spsa_samples": 1, "seed_batch": 1}
    run = experiment.make_unit_runner(small)
    result = run("gsiirl", 4, 2, lambda k: None)
    assert len(result["learner_return"]) == 2
    retrained = {k: v for k, v in result.items() if k.startswith("retrained_")}
    assert {"retrained_learner_return", "retrained_expert_return", "retrained_collision_rate",
            "retrained_goal_rate"} <= set(retrained) and all(len(v) == 1 for v in retrained.values())
    # the same numbers as retraining by hand on the last row's θ's with the MARL unit's key
    from gsiirl.experiments.runner import merge_options

    _, algorithm = experiment._build(experiment._freeze(merge_options(experiment.DEFAULT_OPTIONS, small)))
    theta_l = jnp.asarray([result[f"theta_l_{i}"][-1] for i in range(3)])
    theta_e = jnp.asarray([result[f"theta_e_{i}"][-1] for i in range(3)])
    by_hand = algorithm.retrained_evaluation(jax.random.PRNGKey(4), theta_l, theta_e, 2)
    assert {f"retrained_{k}": [v] for k, v in by_hand.items()} == retrained
    marl = run("marl", 4, 2, lambda k: None)
    assert not any(k.startswith("retrained_") for k in marl)
    off = experiment.make_unit_runner({**small, "retrain_evaluation": False})("gsiirl", 4, 2, lambda k: None)
    assert not any(k.startswith("retrained_") for k in off)
    # the retraining comes after the run: without it every other number is the same (reproduce
    # --no-reward-transfer promises the same Table 1 and figures)
    same = {k: v for k, v in result.items() if not k.startswith("retrained_") and k != "wall_time"}
    assert set(off) == set(same) | {"wall_time"} and {k: off[k] for k in same} == same


def test_group_runner_runs_fixed_seed_groups_with_a_trajectory_per_seed():
    from gsiirl.experiments import hri as experiment

    small = {"horizon": 5, "hidden": 8, "num_envs": 4, "finetune_cycles": 1, "updates_per_cycle": 2,
             "buffer_cycles": 2, "minibatch_size": 16, "warmup_cycles": 2, "data_episodes": 8,
             "evaluation_episodes": 8, "spsa_samples": 1, "seed_batch": 2}
    ticks = []  # MA-IRL: the cheapest method with per-iteration rows and a retrained evaluation
    group = experiment.make_group_runner(small)("ma-irl", (0, 1), 2, ticks.append)
    assert ticks == [0, 1] and len(group) == 2
    for metrics in group:
        assert len(metrics["learner_return"]) == 2 and len(metrics["retrained_learner_return"]) == 1
        assert 2 <= len(metrics["trajectory_robot_x"]) <= 6  # start + at most T = 5 steps
    assert group[0]["learner_return"] != group[1]["learner_return"]  # two seeds, not one copied
    # the unit runner computes the seed's whole group, so it gives the runner's numbers exactly
    alone = experiment.make_unit_runner(small)("ma-irl", 1, 2, lambda k: None)
    assert {k: v for k, v in alone.items() if k != "wall_time"} == {k: v for k, v in group[1].items() if k != "wall_time"}


def test_initial_radius_option_sets_the_norms_of_the_random_initial_rewards():
    """``initial_radius`` scales the random initial θ's: norms in [0.5, 1]·initial_radius from the same key
    (default 0.25 since 0.3.0; the ball's radius 1.5 before, as in the config's None); a value outside
    (0, radius] is refused by name."""
    from dataclasses import replace

    import jax

    from gsiirl.algorithms.sample_based import SampleBasedGSIIRL
    from gsiirl.experiments import hri as experiment
    from gsiirl.experiments.runner import merge_options

    def initial(options):
        algorithm = experiment._build(experiment._freeze(merge_options(experiment.DEFAULT_OPTIONS, options)))[1]
        return [np.asarray(t) for t in algorithm.initial_parameters(jax.random.PRNGKey(3))]

    assert experiment.DEFAULT_OPTIONS["initial_radius"] == 0.25  # docs/hri.md, "Session 35"
    large, small = initial({"initial_radius": 1.5}), initial({})
    config = experiment._sample_based_config(merge_options(experiment.DEFAULT_OPTIONS, {}))
    unset = SampleBasedGSIIRL(experiment.make_game(experiment.DEFAULT_OPTIONS),
                              replace(config, initial_radius=None)).initial_parameters(jax.random.PRNGKey(3))
    for theta, theta_unset, theta_small in zip(large, unset, small):
        np.testing.assert_array_equal(theta, np.asarray(theta_unset))  # the config's None means the radius, 1.5
        assert 0.75 - 1e-6 <= np.linalg.norm(theta) <= 1.5 + 1e-6
        assert 0.125 - 1e-6 <= np.linalg.norm(theta_small) <= 0.25 + 1e-6
        np.testing.assert_allclose(theta_small / np.linalg.norm(theta_small), theta / np.linalg.norm(theta), atol=1e-5)
    for bad in (2.0, 0.0, -1.0):
        with pytest.raises(ValueError, match="initial_radius"):
            experiment.check_options(merge_options(experiment.DEFAULT_OPTIONS, {"initial_radius": bad}))


@pytest.mark.parametrize("option, stored_options, old_value", [
    ("initial_radius", {}, 1.5),  # before 0.3.0 the initial draws used the ball's radius
    ("hessian_regularization", {"regularization": 0.1}, 0.1),  # before the option the Hessian's ridge was λ
])
def test_results_made_before_an_option_resume_with_the_value_they_were_made_with(tmp_path, write_one_seed_results,
                                                                                 option, stored_options, old_value):
    """A results file without ``option`` was made with the value it derives from its other options (the radius,
    λ): it resumes only with that value (the current default is refused, naming the option), and, its seeds
    being stored, then computes nothing."""
    from gsiirl.experiments import hri as experiment
    from gsiirl.experiments.results_file import ResultsFileError
    from gsiirl.experiments.runner import run_experiment

    old_options = {**{k: v for k, v in experiment.DEFAULT_OPTIONS.items() if k != option}, **stored_options}
    assert experiment.DEFAULT_OPTIONS[option] != old_value
    stored = {"learner_return": [-1.4], "expert_return": [-4.1]}
    write_one_seed_results(tmp_path, "hri", "marl", old_options, stored)

    def resume(options=None):
        return run_experiment("hri", out_dir=tmp_path, methods=["marl"], seeds=1, iterations=1, resume=True,
                              options={**stored_options, **(options or {})})

    with pytest.raises(ResultsFileError, match=option):
        resume()
    assert resume({option: old_value})["methods"]["marl"]["seeds"]["0"] == stored
