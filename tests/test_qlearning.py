"""Tabular Q-learning (A.10.3 exploration) against brute-force backward induction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsiirl.games.tabular import TabularGame
from gsiirl.solvers.qlearning import behaviour_policy, q_learning, top_two_policy


def test_exploration_rule_probabilities():
    q = jnp.array([[0.0, 3.0, 1.0, -1.0]])
    np.testing.assert_allclose(top_two_policy(q, 0.6), [[0.0, 0.6, 0.4, 0.0]], atol=1e-7)
    # 0.7 × (0.6 best, 0.4 second) + 0.3 × uniform over 4 actions
    np.testing.assert_allclose(behaviour_policy(q, 0.7, 0.6), [[0.075, 0.495, 0.355, 0.075]], atol=1e-7)


def _chain_game():
    """3 states, learner 3 actions, expert 1 action, deterministic: action a moves to state a."""
    num_states, num_actions, horizon = 3, 3, 3
    successors = np.broadcast_to(np.arange(num_actions)[None, :, None, None], (num_states, num_actions, 1, 1))
    rng = np.random.default_rng(0)
    reward = rng.uniform(-1, 1, size=(num_states, num_actions, 1)).astype(np.float32)
    expert = rng.uniform(-1, 1, size=(num_states, num_actions, 1)).astype(np.float32)
    game = TabularGame(initial=np.array([1.0, 0, 0]), horizon=horizon, discount=0.9,
                       learner_reward=np.zeros((num_states, num_actions)), learner_oracle=reward,
                       expert_reward=expert, successor_states=successors.astype(np.int32),
                       successor_probs=np.ones((num_states, num_actions, 1, 1)))
    return game, reward[..., 0], expert[..., 0]


def test_converges_to_backward_induction_q():
    game, reward, _ = _chain_game()
    optimal = np.zeros((3, 3, 3))  # [T, S, A], Q*[t,s,a] = r(s,a) + γ max_a' Q*[t+1, a, a']
    for t in reversed(range(3)):
        future = optimal[t + 1].max(axis=1) if t < 2 else np.zeros(3)
        optimal[t] = reward + 0.9 * future[None, :]
    result = q_learning(jax.random.PRNGKey(0), game, game.learner_true_reward, game.expert_reward,
                        num_episodes=6000, batch_size=32)
    visited = np.asarray(result.visits) > 0
    assert visited[0, 0] and visited[1:].all()
    np.testing.assert_allclose(np.asarray(result.learner_q)[visited], optimal[visited], atol=0.03)
    order = np.argsort(-optimal, axis=-1)
    expected_policy = np.zeros_like(optimal)
    np.put_along_axis(expected_policy, order[..., :1], 0.6, axis=-1)
    np.put_along_axis(expected_policy, order[..., 1:2], 0.4, axis=-1)
    np.testing.assert_allclose(np.asarray(result.policy.learner)[visited], expected_policy[visited], atol=1e-6)
    np.testing.assert_allclose(result.policy.expert, 1.0)  # a single expert action


def test_same_key_same_numbers_and_vmap():
    game, _, _ = _chain_game()
    run = lambda key: q_learning(key, game, game.learner_true_reward, game.expert_reward,
                                 num_episodes=256, batch_size=32).learner_q
    first, second = run(jax.random.PRNGKey(3)), run(jax.random.PRNGKey(3))
    np.testing.assert_array_equal(first, second)
    batched = jax.vmap(run)(jax.random.split(jax.random.PRNGKey(1), 2))
    assert batched.shape == (2, 3, 3, 3)


@pytest.mark.parametrize("kwargs,field", [({"num_episodes": 0}, "num_episodes"), ({"greedy_prob": 1.5}, "greedy_prob"),
                                          ({"learning_rate_exponent": 0.0}, "learning_rate_exponent")])
def test_bad_arguments(kwargs, field):
    game, _, _ = _chain_game()
    with pytest.raises(ValueError, match=field):
        q_learning(jax.random.PRNGKey(0), game, game.learner_true_reward, game.expert_reward, **kwargs)
