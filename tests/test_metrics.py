"""Tests for gsiirl.algorithms.metrics against independent NumPy / SciPy / brute-force computations."""

import itertools

import jax
import numpy as np
import pytest
import scipy.stats

from gsiirl.algorithms.metrics import (
    discounted_trajectory_returns,
    epic_distance,
    expert_policy_kl,
    expert_value_difference,
    return_correlations,
)

TOL = 2e-5  # float32


# -- EPIC: brute force over (s, a, s') in float64 -----------------------------------------------------

def brute_force_epic(reward_a, reward_b, discount, state_w=None, action_w=None):
    """Canonicalise with explicit loops over (s, a, s') and expectations, then weighted Pearson."""
    num_states = reward_a.shape[0]
    joint = reward_a.shape[1] * reward_a.shape[2]
    state_w = np.full(num_states, 1 / num_states) if state_w is None else np.asarray(state_w, float)
    action_w = np.full(joint, 1 / joint) if action_w is None else np.asarray(action_w, float).reshape(-1)
    state_w, action_w = state_w / state_w.sum(), action_w / action_w.sum()

    def as_function(reward):
        flat = np.asarray(reward, float).reshape((num_states, joint) + np.shape(reward)[3:])
        if flat.ndim == 2:
            return lambda s, a, s_next: flat[s, a]
        return lambda s, a, s_next: flat[s, a, s_next]

    def canonical(reward_fn):
        def expectation_from(state):  # E_{A ~ D_A, S' ~ D_S} R(state, A, S')
            return sum(action_w[a] * state_w[t] * reward_fn(state, a, t)
                       for a in range(joint) for t in range(num_states))
        overall = sum(state_w[s] * expectation_from(s) for s in range(num_states))
        table = np.zeros((num_states, joint, num_states))
        for s, a, t in itertools.product(range(num_states), range(joint), range(num_states)):
            table[s, a, t] = (reward_fn(s, a, t) + discount * expectation_from(t) - expectation_from(s)
                              - discount * overall)
        return table

    canon_a, canon_b = canonical(as_function(reward_a)), canonical(as_function(reward_b))
    weight = np.zeros((num_states, joint, num_states))
    for s, a, t in itertools.product(range(num_states), range(joint), range(num_states)):
        weight[s, a, t] = state_w[s] * action_w[a] * state_w[t]
    mean_a, mean_b = np.sum(weight * canon_a), np.sum(weight * canon_b)
    cov = np.sum(weight * (canon_a - mean_a) * (canon_b - mean_b))
    var_a = np.sum(weight * (canon_a - mean_a) ** 2)
    var_b = np.sum(weight * (canon_b - mean_b) ** 2)
    rho = cov / np.sqrt(var_a * var_b)
    return np.sqrt((1 - rho) / 2)


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.mark.parametrize("weighted", [False, True])
def test_epic_matches_brute_force_state_action(rng, weighted):
    for discount in (0.0, 0.7, 1.0):
        reward_a, reward_b = rng.normal(size=(4, 2, 3)), rng.normal(size=(4, 2, 3))
        reward_b = 0.6 * reward_a + 0.4 * reward_b  # partially correlated so the distance is mid-range
        state_w = rng.uniform(0.1, 1.0, size=4) if weighted else None
        action_w = rng.uniform(0.1, 1.0, size=(2, 3)) if weighted else None
        expected = brute_force_epic(reward_a, reward_b, discount, state_w, action_w)
        got = epic_distance(reward_a, reward_b, discount, state_w, action_w)
        assert abs(float(got) - expected) < TOL, (discount, float(got), expected)


def test_epic_matches_brute_force_transition_rewards(rng):
    state_w, action_w = rng.uniform(0.1, 1, size=3), rng.uniform(0.1, 1, size=(2, 2))
    transition_a = rng.normal(size=(3, 2, 2, 3))
    transition_b = rng.normal(size=(3, 2, 2, 3))
    state_action = rng.normal(size=(3, 2, 2))
    for a, b in ((transition_a, transition_b), (transition_a, state_action), (state_action, transition_b)):
        expected = brute_force_epic(a, b, 0.8, state_w, action_w)
        assert abs(float(epic_distance(a, b, 0.8, state_w, action_w)) - expected) < TOL


def test_epic_closed_form_agrees_with_lifted_transition_form(rng):
    reward_a, reward_b = rng.normal(size=(5, 3, 2)), rng.normal(size=(5, 3, 2))
    lifted_b = np.broadcast_to(reward_b[..., None], (5, 3, 2, 5))
    closed = epic_distance(reward_a, reward_b, 0.9)
    lifted = epic_distance(reward_a, lifted_b, 0.9)
    assert abs(float(closed) - float(lifted)) < TOL


def test_epic_invariances(rng):
    discount = 0.9
    reward = rng.normal(size=(5, 2, 3))
    potential = rng.normal(size=5) * 3.0
    shaped = reward[..., None] + discount * potential[None, None, None, :] - potential[:, None, None, None]
    state_w, action_w = rng.uniform(0.1, 1, size=5), rng.uniform(0.1, 1, size=(2, 3))
    for weights in ((None, None), (state_w, action_w)):
        assert float(epic_distance(reward, 4.2 * reward, discount, *weights)) < 1e-5
        assert float(epic_distance(reward, 0.3 * reward + 7.0, discount, *weights)) < 1e-5
        assert float(epic_distance(reward, shaped, discount, *weights)) < 1e-5
        assert float(epic_distance(reward, 2.0 * shaped + 1.0, discount, *weights)) < 1e-5
        # a state-only term f(s) is not shaping for γ > 0 (it is for γ = 0, where C(R) = R − E_A R)
        assert float(epic_distance(reward, reward + potential[:, None, None], discount, *weights)) > 1e-2
        assert float(epic_distance(reward, reward + potential[:, None, None], 0.0, *weights)) < 1e-5
        assert abs(float(epic_distance(reward, -reward, discount, *weights)) - 1.0) < 1e-5
        assert abs(float(epic_distance(reward, -3.0 * shaped, discount, *weights)) - 1.0) < 1e-5
    # shaping with the wrong discount is NOT equivalent
    wrong = reward[..., None] + 0.5 * potential[None, None, None, :] - potential[:, None, None, None]
    assert float(epic_distance(reward, wrong, discount)) > 1e-2


def test_epic_is_a_pseudometric_on_random_rewards(rng):
    rewards = [rng.normal(size=(4, 2, 2)) for _ in range(4)]
    for a, b, c in itertools.permutations(rewards, 3):
        d_ab, d_ba = float(epic_distance(a, b, 0.9)), float(epic_distance(b, a, 0.9))
        assert 0.0 <= d_ab <= 1.0 and abs(d_ab - d_ba) < 1e-6
        assert d_ab <= float(epic_distance(a, c, 0.9)) + float(epic_distance(c, b, 0.9)) + 1e-6


def test_epic_degenerate_rewards():
    constant = np.full((3, 2, 2), 5.0)
    other = np.random.default_rng(0).normal(size=(3, 2, 2))
    assert float(epic_distance(constant, np.zeros((3, 2, 2)), 0.9)) == 0.0
    shaping_only = 0.9 * np.arange(3.0)[None, None, None, :] - np.arange(3.0)[:, None, None, None]
    assert float(epic_distance(constant, np.broadcast_to(shaping_only, (3, 2, 2, 3)), 0.9)) == 0.0
    assert abs(float(epic_distance(constant, other, 0.9)) - np.sqrt(0.5)) < 1e-6
    assert not np.isnan(float(epic_distance(constant, other, 0.9)))


def test_epic_jit_and_validation(rng):
    reward_a, reward_b = rng.normal(size=(4, 2, 3)), rng.normal(size=(4, 2, 3))
    eager = epic_distance(reward_a, reward_b, 0.9)
    jitted = jax.jit(epic_distance)(reward_a, reward_b, 0.9)
    assert abs(float(eager) - float(jitted)) < 1e-6
    with pytest.raises(ValueError, match="reward_b"):
        epic_distance(reward_a, rng.normal(size=(4, 3, 3)), 0.9)
    with pytest.raises(ValueError, match="reward_a"):
        epic_distance(rng.normal(size=(4, 6)), reward_b, 0.9)
    with pytest.raises(ValueError, match="discount"):
        epic_distance(reward_a, reward_b, 1.5)
    with pytest.raises(ValueError, match="state_weights"):
        epic_distance(reward_a, reward_b, 0.9, state_weights=np.ones(5))
    with pytest.raises(ValueError, match="action_weights"):
        epic_distance(reward_a, reward_b, 0.9, action_weights=-np.ones((2, 3)))


# -- expert policy KL ------------------------------------------------------------------------------

def random_policy(rng, shape, zero_fraction=0.0):
    logits = rng.normal(size=shape)
    probs = np.exp(logits) * (rng.uniform(size=shape) >= zero_fraction)
    probs[..., 0] += 1e-3  # every row keeps some mass
    return probs / probs.sum(-1, keepdims=True)


def test_expert_policy_kl_matches_scipy(rng):
    horizon, num_states, num_actions = 3, 4, 3
    visitation = rng.dirichlet(np.ones(num_states), size=horizon)
    visitation[1, 2] = 0.0
    true = random_policy(rng, (horizon, num_states, num_actions), zero_fraction=0.3)
    learned = random_policy(rng, (horizon, num_states, num_actions))
    learned[1, 2] = [1.0, 0.0, 0.0]  # zero where true may be positive, but the state is unvisited
    expected = sum(visitation[t, s] * scipy.stats.entropy(true[t, s], learned[t, s])
                   for t in range(horizon) for s in range(num_states) if visitation[t, s] > 0) / horizon
    got = float(expert_policy_kl(visitation, true, learned))
    assert np.isfinite(got) and abs(got - expected) < 1e-5 * max(1.0, expected)
    assert abs(float(jax.jit(expert_policy_kl)(visitation, true, learned)) - expected) < 1e-5
    assert float(expert_policy_kl(visitation, true, true)) < 1e-6


def test_expert_policy_kl_infinite_and_validation(rng):
    visitation = np.full((2, 2), 0.5)
    true = np.full((2, 2, 2), 0.5)
    learned = true.copy()
    learned[0, 1] = [1.0, 0.0]  # visited state where the learned policy rules out a true action
    assert float(expert_policy_kl(visitation, true, learned)) == np.inf
    with pytest.raises(ValueError, match="learned_expert"):
        expert_policy_kl(visitation, true, np.full((2, 2, 3), 1 / 3))
    with pytest.raises(ValueError, match="true_expert"):
        expert_policy_kl(visitation, np.full((3, 2, 2), 0.5), true)


# -- brute-force returns on a tiny game --------------------------------------------------------------

def tiny_game(rng, num_states=2, num_learner=2, num_expert=2):
    transitions = rng.dirichlet(np.ones(num_states), size=(num_states, num_learner, num_expert))
    initial = rng.dirichlet(np.ones(num_states))
    expert_reward = rng.normal(size=(num_states, num_learner, num_expert))
    return initial, transitions, expert_reward


def enumerate_trajectories(initial, transitions, learner, expert):
    """All (states, learner_actions, expert_actions) of length T with their probabilities."""
    horizon, num_states, num_learner = learner.shape
    num_expert = expert.shape[2]
    steps = list(itertools.product(range(num_states), range(num_learner), range(num_expert)))
    for path in itertools.product(steps, repeat=horizon):
        prob = initial[path[0][0]]
        for t, (s, a_l, a_e) in enumerate(path):
            prob *= learner[t, s, a_l] * expert[t, s, a_e]
            if t + 1 < horizon:
                prob *= transitions[s, a_l, a_e, path[t + 1][0]]
        if prob > 0:
            yield np.array(path).T, prob  # [3, T]


def enumerated_return(initial, transitions, learner, expert, reward, discount):
    return sum(prob * sum(discount ** t * reward[s, a_l, a_e] for t, (s, a_l, a_e) in enumerate(path.T))
               for path, prob in enumerate_trajectories(initial, transitions, learner, expert))


def test_expert_value_difference_with_brute_force_best_response(rng):
    horizon, discount = 3, 0.9
    initial, transitions, expert_reward = tiny_game(rng)
    learner = random_policy(rng, (horizon, 2, 2))
    # the true expert: best deterministic time-indexed response to the learner, by enumeration
    best_return = max(
        enumerated_return(initial, transitions, learner, np.eye(2)[np.array(choice).reshape(horizon, 2)],
                          expert_reward, discount)
        for choice in itertools.product(range(2), repeat=horizon * 2))
    assert float(expert_value_difference(best_return, best_return)) == 0.0
    for _ in range(3):
        learned = random_policy(rng, (horizon, 2, 2))
        learned_return = enumerated_return(initial, transitions, learner, learned, expert_reward, discount)
        gap = float(expert_value_difference(best_return, learned_return))
        assert gap > 0.0 and abs(gap - (best_return - learned_return)) < 1e-5
    with pytest.raises(ValueError, match="learned_expert_return"):
        expert_value_difference(np.zeros(2), np.zeros(3))


def test_discounted_trajectory_returns_match_enumeration(rng):
    horizon, discount = 3, 0.8
    initial, transitions, expert_reward = tiny_game(rng)
    learner, expert = random_policy(rng, (horizon, 2, 2)), random_policy(rng, (horizon, 2, 2))
    paths, probs = zip(*enumerate_trajectories(initial, transitions, learner, expert))
    paths = np.stack(paths).astype(np.int32)  # [N, 3, T]
    returns = discounted_trajectory_returns(expert_reward, paths[:, 0], paths[:, 1], paths[:, 2], discount)
    loop = [sum(discount ** t * expert_reward[tuple(p[:, t])] for t in range(horizon)) for p in paths]
    np.testing.assert_allclose(np.asarray(returns), loop, rtol=1e-5, atol=1e-5)
    expected_return = enumerated_return(initial, transitions, learner, expert, expert_reward, discount)
    assert abs(float(np.dot(probs, np.asarray(returns))) - expected_return) < 1e-5
    jitted = jax.jit(discounted_trajectory_returns)(expert_reward, paths[:, 0], paths[:, 1], paths[:, 2],
                                                    discount)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(returns), rtol=1e-6)


def test_discounted_trajectory_returns_validation():
    reward = np.zeros((2, 2, 3))
    ok = np.zeros((4, 5), dtype=np.int32)
    with pytest.raises(ValueError, match="expert_actions"):
        discounted_trajectory_returns(reward, ok, ok, ok + 3, 0.9)
    with pytest.raises(ValueError, match="learner_actions"):
        discounted_trajectory_returns(reward, ok, np.zeros((4, 6), np.int32), ok, 0.9)
    with pytest.raises(ValueError, match="states"):
        discounted_trajectory_returns(reward, ok.astype(float), ok, ok, 0.9)


# -- correlations ----------------------------------------------------------------------------------

def test_return_correlations_match_scipy_with_ties(rng):
    for _ in range(3):
        true = rng.integers(0, 6, size=40).astype(float)  # many ties
        learned = 0.5 * true + rng.integers(0, 4, size=40)
        pearson, spearman = return_correlations(learned, true)
        assert abs(float(pearson) - scipy.stats.pearsonr(learned, true)[0]) < 1e-5
        assert abs(float(spearman) - scipy.stats.spearmanr(learned, true)[0]) < 1e-5
    continuous = rng.normal(size=25)
    jitted = jax.jit(return_correlations)(np.exp(continuous), continuous)
    assert abs(float(jitted[1]) - 1.0) < 1e-6  # monotone transform: Spearman 1
    assert abs(float(jitted[0]) - scipy.stats.pearsonr(np.exp(continuous), continuous)[0]) < 1e-5


def test_return_correlations_degenerate_and_validation():
    pearson, spearman = return_correlations(np.ones(5), np.arange(5.0))
    assert np.isnan(float(pearson)) and np.isnan(float(spearman))
    with pytest.raises(ValueError, match="true_returns"):
        return_correlations(np.ones(5), np.ones(4))
    with pytest.raises(ValueError, match="learned_returns"):
        return_correlations(np.ones(1), np.ones(1))
