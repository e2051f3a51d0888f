"""Equilibrium solvers against independent ground truth (brute force, closed forms)."""

import numpy as np
import pytest
from scipy.optimize import brentq

from gsiirl.games.random import random_tabular_game
from gsiirl.games.tabular import TabularGame
from gsiirl.solvers.equilibrium import solve_equilibrium
from gsiirl.solvers.occupancy import discounted_occupancy, occupancy


def _matrix_game(payoff_learner, payoff_expert, horizon=1):
    shape = payoff_learner.shape
    return TabularGame(initial=np.ones(1), horizon=horizon, discount=1.0, learner_reward=np.zeros(shape[:1])[None],
                       learner_oracle=payoff_learner[None], expert_reward=payoff_expert[None],
                       transitions=np.ones((1,) + shape + (1,)))


def _softmax(x):
    z = np.exp(x - x.max())
    return z / z.sum()


def _brute_force_logit_equilibrium(payoff_l, payoff_e, temperature):
    """2x2 logit equilibrium by root finding on p = BR_l(BR_e(p)) (scalar, bracketed)."""

    def best_response_e(p):
        return _softmax(np.array([p, 1 - p]) @ payoff_e / temperature)

    def gap(p):
        q = best_response_e(p)
        return _softmax(payoff_l @ q / temperature)[0] - p

    grid = np.linspace(1e-9, 1 - 1e-9, 2001)
    values = np.array([gap(p) for p in grid])
    roots = [brentq(gap, grid[i], grid[i + 1], xtol=1e-14) for i in np.nonzero(np.sign(values[:-1]) != np.sign(values[1:]))[0]]
    assert len(roots) == 1, "test games are chosen with a unique logit equilibrium"
    p = roots[0]
    return np.array([p, 1 - p]), best_response_e(p)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("temperature", [0.5, 1.0])
def test_soft_nash_matches_brute_force_logit_equilibrium(seed, temperature):
    rng = np.random.default_rng(seed)
    payoff_l, payoff_e = rng.normal(size=(2, 2)), rng.normal(size=(2, 2))
    game = _matrix_game(payoff_l, payoff_e)
    result = solve_equilibrium(game, game.learner_true_reward, game.expert_reward, temperature=temperature,
                               iterations=200)
    expected_l, expected_e = _brute_force_logit_equilibrium(payoff_l, payoff_e, temperature)
    np.testing.assert_allclose(np.asarray(result.policy.learner[0, 0]), expected_l, atol=1e-8)
    np.testing.assert_allclose(np.asarray(result.policy.expert[0, 0]), expected_e, atol=1e-8)
    assert float(result.residual.max()) < 1e-8


def test_matching_pennies_with_large_payoffs_converges_to_uniform():
    payoff = 8.0 * np.array([[1.0, -1.0], [-1.0, 1.0]])
    game = _matrix_game(payoff, -payoff)
    result = solve_equilibrium(game, game.learner_true_reward, game.expert_reward, iterations=200)
    np.testing.assert_allclose(np.asarray(result.policy.learner[0, 0]), [0.5, 0.5], atol=1e-6)
    np.testing.assert_allclose(np.asarray(result.policy.expert[0, 0]), [0.5, 0.5], atol=1e-6)


def test_non_convergence_is_reported():
    rng = np.random.default_rng(0)
    payoff = 30.0 * rng.normal(size=(3, 3))
    game = _matrix_game(payoff, -payoff.T.T)
    result = solve_equilibrium(game, game.learner_true_reward, game.expert_reward, iterations=1)
    assert float(result.residual.max()) > 1e-3


def _entropy(p):
    return -np.sum(p * np.log(np.maximum(p, 1e-300)), axis=-1)


@pytest.mark.parametrize("temperature", [0.7, 1.0])
def test_zero_sum_soft_values_sum_to_entropy_terms_only(temperature):
    base = random_tabular_game(4, num_states=5, num_learner_actions=3, num_expert_actions=2, horizon=4,
                               discount=0.95)
    game = base.with_rewards(learner_reward=np.zeros((5, 3)), learner_oracle=-np.asarray(base.expert_reward))
    result = solve_equilibrium(game, game.learner_true_reward, game.expert_reward, temperature=temperature,
                               iterations=200)
    visitation = np.asarray(occupancy(game, result.policy)).sum(axis=(2, 3))  # [T, S]
    entropy = _entropy(np.asarray(result.policy.learner)) + _entropy(np.asarray(result.policy.expert))  # [T, S]
    discount = game.discount ** np.arange(game.horizon)
    expected = temperature * np.sum(discount[:, None] * visitation * entropy)
    total = np.asarray(game.initial) @ (np.asarray(result.learner_value) + np.asarray(result.expert_value))
    assert total == pytest.approx(expected, rel=1e-9, abs=1e-10)
    assert expected > 0.1  # the identity is not trivially 0 = 0


def test_joint_soft_matches_explicit_loops():
    game = random_tabular_game(7, num_states=4, num_learner_actions=2, num_expert_actions=3, horizon=3,
                               discount=0.8)
    temperature = 0.6
    result = solve_equilibrium(game, game.learner_true_reward, game.expert_reward, model="joint_soft",
                               temperature=temperature)
    transitions = np.asarray(game.dynamics.transitions)
    total = np.asarray(game.learner_true_reward) + np.asarray(game.expert_reward)
    value = np.zeros(4)
    policies = []
    for _ in range(game.horizon):
        q = np.zeros((4, 2, 3))
        for s in range(4):
            for al in range(2):
                for ae in range(3):
                    q[s, al, ae] = total[s, al, ae] + game.discount * transitions[s, al, ae] @ value
        value = np.array([temperature * np.log(np.sum(np.exp(q[s] / temperature))) for s in range(4)])
        policies.append(np.exp((q - value[:, None, None]) / temperature))
    np.testing.assert_allclose(np.asarray(result.policy.joint), np.array(policies[::-1]), atol=1e-12)
    np.testing.assert_allclose(np.asarray(result.learner_value), value, atol=1e-12)


def test_occupancy_matches_enumeration_and_discounting():
    game = random_tabular_game(11, num_states=3, horizon=3, discount=0.7)
    policy = solve_equilibrium(game, game.learner_true_reward, game.expert_reward).policy
    occ = np.asarray(occupancy(game, policy))
    joint = np.asarray(policy.joint_probs())
    transitions = np.asarray(game.dynamics.transitions)
    state = np.asarray(game.initial)
    for t in range(game.horizon):
        mass = state[:, None, None] * joint[t]
        np.testing.assert_allclose(occ[t], mass, atol=1e-12)
        state = np.einsum("sle,slen->n", mass, transitions)
    weights = game.discount ** np.arange(game.horizon)
    np.testing.assert_allclose(np.asarray(discounted_occupancy(game, policy)), np.tensordot(weights, occ, 1),
                               atol=1e-12)


def test_solver_rejects_bad_arguments():
    game = random_tabular_game(0)
    with pytest.raises(ValueError, match="model"):
        solve_equilibrium(game, game.learner_true_reward, game.expert_reward, model="stackelberg")
    with pytest.raises(ValueError, match="temperature"):
        solve_equilibrium(game, game.learner_true_reward, game.expert_reward, temperature=0.0)
    with pytest.raises(ValueError, match="expert_reward: expected shape"):
        solve_equilibrium(game, game.learner_true_reward, game.expert_reward[:2])
    with pytest.raises(ValueError, match="learner_reward: contains NaN"):
        solve_equilibrium(game, np.where(np.arange(game.num_states)[:, None, None] == 0, np.nan,
                                         np.asarray(game.learner_true_reward)), game.expert_reward)


@pytest.mark.parametrize("num_l, num_e", [(3, 5), (5, 3), (4, 4)])
def test_newton_block_solve_matches_the_full_linear_system(num_l, num_e):
    """The Newton step's Schur-complement solve equals numpy's solve of the full (A_l + A_e) system."""
    from gsiirl.solvers.equilibrium import _solve_two_block

    rng = np.random.default_rng(num_l * 10 + num_e)
    upper, lower = rng.normal(size=(6, num_l, num_e)), rng.normal(size=(6, num_e, num_l))
    rhs_l, rhs_e = rng.normal(size=(6, num_l)), rng.normal(size=(6, num_e))
    full = np.eye(num_l + num_e) - np.block([[np.zeros((6, num_l, num_l)), upper], [lower, np.zeros((6, num_e, num_e))]])
    expected = np.linalg.solve(full, np.concatenate([rhs_l, rhs_e], axis=1)[..., None])[..., 0]
    got = np.asarray(_solve_two_block(upper.astype(np.float32), lower.astype(np.float32),
                                      rhs_l.astype(np.float32), rhs_e.astype(np.float32)))
    np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3)


def _policy_gradient(game, iterations):
    """d/d r_e of a fixed linear function of the soft_nash policy (reverse mode through the solver)."""
    import jax
    import jax.numpy as jnp

    from gsiirl.solvers.equilibrium import soft_nash

    weights = jnp.linspace(-1.0, 1.0, game.num_states * game.horizon * game.num_learner_actions)

    def objective(expert_reward):
        policy = soft_nash(game.dynamics, game.learner_true_reward, expert_reward, game.discount, 1.0, game.horizon,
                           iterations).policy
        return jnp.sum(policy.learner.reshape(-1) * weights) + jnp.sum(policy.expert ** 2)

    return jax.jit(jax.grad(objective)), game.expert_reward


def test_rematerialised_stages_give_the_same_gradient(monkeypatch):
    """Above REMATERIALISE_ABOVE the solver's stages are recomputed in the backward pass instead of
    stored; the gradient must be the one of the stored version (here forced on a small game)."""
    import jax

    import gsiirl.solvers.equilibrium as equilibrium

    game = random_tabular_game(0, 12, 3, 3, 6, discount=0.95, num_successors=3, sparse=True)
    stored = np.asarray(_policy_gradient(game, 20)[0](game.expert_reward))
    monkeypatch.setattr(equilibrium, "REMATERIALISE_ABOVE", 0)
    jax.clear_caches()  # soft_nash is jitted: drop the trace made with the threshold as it was
    try:
        recomputed = np.asarray(_policy_gradient(game, 20)[0](game.expert_reward))
    finally:
        jax.clear_caches()
    assert np.abs(stored).max() > 1e-3
    np.testing.assert_allclose(recomputed, stored, rtol=1e-10, atol=1e-12)


def test_gradient_through_a_large_game_does_not_store_every_fixed_point_iterate():
    """Measured before the fix (session 32): reverse mode through soft_nash kept every stage's iterates,
    ≈ 12 KB per state and stage (float32, 4×4 actions, 60 iterations): MA-IRL at S = 10,000, T = 100 peaked
    at 12 GB, S = 50,000 would need ≈ 55 GB. Compiled only (XLA's memory analysis), nothing is allocated."""
    import jax

    S, A, T, iterations = 2000, 4, 50, 60
    game = random_tabular_game(0, S, A, A, T, discount=0.95, num_successors=3, sparse=True)
    gradient, argument = _policy_gradient(game, iterations)
    analysis = gradient.lower(argument).compile().memory_analysis()
    itemsize = jax.numpy.dtype(jax.numpy.result_type(float)).itemsize
    one_value_per_iterate = S * T * iterations * (A + A) * itemsize  # 384 MB in float64; stored: ≈ 6× this
    assert analysis.temp_size_in_bytes < one_value_per_iterate / 4, analysis.temp_size_in_bytes
