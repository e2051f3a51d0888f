"""Adversarial MA-IRL (convex programme): learned rewards reproduce the demonstrated equilibrium play."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsiirl.algorithms.ma_irl_adversarial import empirical_policy, ma_irl_adversarial
from gsiirl.games.security import SecurityReward, generate_attack_graph, security_game
from gsiirl.rewards import MLPReward
from gsiirl.solvers.equilibrium import solve_equilibrium
from gsiirl.solvers.occupancy import occupancy
from gsiirl.solvers.sampling import Trajectories


def _sample(game, policy, num, seed):
    """Independent numpy sampler of joint play (sparse successors)."""
    rng = np.random.default_rng(seed)
    succ, probs = np.asarray(game.dynamics.successor_states), np.asarray(game.dynamics.successor_probs, float)
    learner, expert = np.asarray(policy.learner, float), np.asarray(policy.expert, float)
    out = np.zeros((3, num, game.horizon), dtype=np.int32)
    for n in range(num):
        state = int(rng.choice(game.num_states, p=np.asarray(game.initial, float)))
        for t in range(game.horizon):
            a_l = int(rng.choice(learner.shape[2], p=learner[t, state] / learner[t, state].sum()))
            a_e = int(rng.choice(expert.shape[2], p=expert[t, state] / expert[t, state].sum()))
            out[:, n, t] = state, a_l, a_e
            row = probs[state, a_l, a_e]
            state = int(succ[state, a_l, a_e, rng.choice(row.size, p=row / row.sum())])
    return Trajectories(jnp.asarray(out[0]), jnp.asarray(out[1]), jnp.asarray(out[2]))


def _tiny():
    graph = generate_attack_graph(4, 3, 3)
    game = security_game(graph, horizon=3, discount=0.9)
    return graph, game, SecurityReward(graph)


def _policy_of(game, model, theta_l, theta_e):
    learner = game.learner_reward_with(model.table(jnp.asarray(theta_l)))
    return solve_equilibrium(game, learner, model.table(jnp.asarray(theta_e)), iterations=200).policy


def _visited_gap(game, reference, candidate):
    visited = np.asarray(occupancy(game, reference).sum(axis=(2, 3))) > 1e-6
    gap_l = np.abs(np.asarray(reference.learner) - np.asarray(candidate.learner)).max(axis=-1)
    gap_e = np.abs(np.asarray(reference.expert) - np.asarray(candidate.expert)).max(axis=-1)
    return max(gap_l[visited].max(), gap_e[visited].max())


@pytest.mark.parametrize("zero_sum", [True, False])
def test_exact_demonstrations_are_reproduced(zero_sum):
    _, game, model = _tiny()
    demonstrated = solve_equilibrium(game, game.learner_true_reward, game.expert_reward, iterations=200).policy
    result = ma_irl_adversarial(game, model, demonstrated, zero_sum=zero_sum)
    assert np.linalg.norm(result.theta_expert) <= 1.0 + 1e-9
    assert result.residual < 1e-3
    assert _visited_gap(game, demonstrated, _policy_of(game, model, result.theta_learner, result.theta_expert)) < 1e-3
    if zero_sum:
        np.testing.assert_allclose(result.theta_learner, -result.theta_expert)


def test_sampled_demonstrations_are_approximately_reproduced():
    _, game, model = _tiny()
    demonstrated = solve_equilibrium(game, game.learner_true_reward, game.expert_reward, iterations=200).policy
    demos = _sample(game, demonstrated, 3000, 0)
    result = ma_irl_adversarial(game, model, demos)
    learned = _policy_of(game, model, result.theta_learner, result.theta_expert)
    assert _visited_gap(game, demonstrated, learned) < 0.1
    # a random reward in the ball does much worse: the test can fail
    random_theta = np.asarray(model.init(jax.random.PRNGKey(5)))
    random_policy = _policy_of(game, model, -random_theta, random_theta)
    assert _visited_gap(game, demonstrated, random_policy) > 0.1


def test_empirical_policy_counts_by_hand():
    trajectories = Trajectories(states=jnp.array([[0, 1], [0, 2]]), learner_actions=jnp.array([[1, 0], [1, 1]]),
                                expert_actions=jnp.array([[0, 0], [1, 0]]))
    policy, visits = empirical_policy(trajectories, (3, 2, 2), 2, smoothing=0.5)
    np.testing.assert_allclose(visits, [[2, 0, 0], [0, 1, 1]])
    np.testing.assert_allclose(policy.learner[0, 0], [0.5 / 3, 2.5 / 3])
    np.testing.assert_allclose(policy.expert[0, 0], [0.5, 0.5])
    np.testing.assert_allclose(policy.learner[0, 1], [0.5, 0.5])  # unvisited: uniform


def test_rejects_nonlinear_model_and_bad_input():
    _, game, _ = _tiny()
    mlp = MLPReward(np.ones(game.joint_shape + (2,)), hidden=2)
    demonstrated = solve_equilibrium(game, game.learner_true_reward, game.expert_reward).policy
    with pytest.raises(ValueError, match="linear"):
        ma_irl_adversarial(game, mlp, demonstrated)
    with pytest.raises(ValueError, match="demonstrations"):
        ma_irl_adversarial(game, SecurityReward(generate_attack_graph(4, 3, 3)), "nope")
