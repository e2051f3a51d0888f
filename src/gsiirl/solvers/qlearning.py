"""The paper's tabular Q-learning for two-player Markov games (Appendix A.10.3), as one ``lax.scan``.

Each player runs independent finite-horizon Q-learning on its own action with a time-indexed table
``Q_i[t, s, a_i]`` (the other player is part of the environment):

    Q_i[t, s, a_i] <- Q_i[t, s, a_i] + η (r_i(s, a_l, a_e) + γ max_a' Q_i[t+1, s', a'] - Q_i[t, s, a_i]),

with ``Q_i[T, ·] = 0``. Exploration follows A.10.3: with probability 0.7 a player plays its best action
(w.p. 0.6) or its second-best action (w.p. 0.4); otherwise (w.p. 0.3) a uniformly random action. The
returned ("exploited") policy plays the best action w.p. 0.6 and the second-best w.p. 0.4.

Training is batched: ``batch_size`` episodes are rolled out with the same tables, then every visited
``(t, s, a_i)`` is moved towards the mean of its TD targets with step ``1 - (1 - η_n)^c`` where ``c`` is
the number of visits in the batch and ``η_n = n^(-learning_rate_exponent)`` for the running visit
count ``n`` (a count-based step size, so that the estimates converge). Everything is a pure function of
the key, so seeds can be vmapped.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gsiirl.games.tabular import DenseDynamics, Dynamics, TabularGame
from gsiirl.solvers.equilibrium import JointPolicy


class QLearningResult(NamedTuple):
    """policy: the exploited JointPolicy (learner [T,S,A_l], expert [T,S,A_e]);
    learner_q [T, S, A_l], expert_q [T, S, A_e]: learned tables; visits [T, S]: state visit counts."""

    policy: JointPolicy
    learner_q: jax.Array
    expert_q: jax.Array
    visits: jax.Array


def top_two_policy(q: jax.Array, best_prob: float) -> jax.Array:
    """Best action w.p. ``best_prob``, second best w.p. ``1 - best_prob`` (ties broken by index).

    q: [..., A] -> probabilities [..., A]. With a single action the best action gets probability 1.
    """
    num_actions = q.shape[-1]
    if num_actions == 1:
        return jnp.ones_like(q)
    _, order = jax.lax.top_k(q, 2)
    return (best_prob * jax.nn.one_hot(order[..., 0], num_actions, dtype=q.dtype)
            + (1.0 - best_prob) * jax.nn.one_hot(order[..., 1], num_actions, dtype=q.dtype))


def behaviour_policy(q: jax.Array, greedy_prob: float, best_prob: float) -> jax.Array:
    """A.10.3 exploration: ``greedy_prob`` × top-two mix + ``(1 - greedy_prob)`` × uniform; [..., A]."""
    num_actions = q.shape[-1]
    return greedy_prob * top_two_policy(q, best_prob) + (1.0 - greedy_prob) / num_actions


def _sample_next_states(key, dynamics: Dynamics, states, actions_l, actions_e):
    if isinstance(dynamics, DenseDynamics):
        probs = dynamics.transitions[states, actions_l, actions_e]
        return jax.random.categorical(key, jnp.log(jnp.maximum(probs, 1e-38)))
    probs = dynamics.successor_probs[states, actions_l, actions_e]
    slot = jax.random.categorical(key, jnp.log(jnp.maximum(probs, 1e-38)))
    return jnp.take_along_axis(dynamics.successor_states[states, actions_l, actions_e], slot[:, None], axis=1)[:, 0]


def _batch_update(q, counts, times, states, actions, targets, exponent):
    """Move Q[t, s, a] towards the batch-mean TD target of each visited (t, s, a)."""
    flat_shape = q.shape
    td_sum = jnp.zeros(flat_shape, q.dtype).at[times, states, actions].add(targets - q[times, states, actions])
    batch_counts = jnp.zeros(flat_shape, q.dtype).at[times, states, actions].add(1.0)
    new_counts = counts + batch_counts
    rate = jnp.where(new_counts > 0, jnp.maximum(new_counts, 1.0) ** (-exponent), 0.0)
    step = 1.0 - (1.0 - rate) ** batch_counts
    mean_td = td_sum / jnp.maximum(batch_counts, 1.0)
    return q + step * mean_td, new_counts


@partial(jax.jit, static_argnames=("horizon", "num_batches", "batch_size"))
def _train(key, dynamics: Dynamics, initial, learner_reward, expert_reward, discount, horizon: int,
           num_batches: int, batch_size: int, greedy_prob, best_prob, exponent):
    num_states, num_l, num_e = learner_reward.shape
    dtype = learner_reward.dtype
    times = jnp.broadcast_to(jnp.arange(horizon)[:, None], (horizon, batch_size))

    def rollout(key, q_l, q_e):
        init_key, key = jax.random.split(key)
        states0 = jax.random.choice(init_key, num_states, (batch_size,), p=initial).astype(jnp.int32)

        def step(states, inputs):
            step_key, t = inputs
            key_l, key_e, key_s = jax.random.split(step_key, 3)
            probs_l = behaviour_policy(q_l[t][states], greedy_prob, best_prob)
            probs_e = behaviour_policy(q_e[t][states], greedy_prob, best_prob)
            actions_l = jax.random.categorical(key_l, jnp.log(jnp.maximum(probs_l, 1e-38)))
            actions_e = jax.random.categorical(key_e, jnp.log(jnp.maximum(probs_e, 1e-38)))
            next_states = _sample_next_states(key_s, dynamics, states, actions_l, actions_e).astype(jnp.int32)
            return next_states, (states, actions_l, actions_e, next_states)

        _, batch = jax.lax.scan(step, states0, (jax.random.split(key, horizon), jnp.arange(horizon)))
        return batch  # each [T, batch]

    def one_batch(carry, batch_key):
        q_l, q_e, counts_l, counts_e, visits = carry
        states, actions_l, actions_e, next_states = rollout(batch_key, q_l, q_e)
        not_last = (times < horizon - 1).astype(dtype)
        next_t = jnp.minimum(times + 1, horizon - 1)
        target_l = learner_reward[states, actions_l, actions_e] + discount * not_last * jnp.max(
            q_l[next_t, next_states], axis=-1)
        target_e = expert_reward[states, actions_l, actions_e] + discount * not_last * jnp.max(
            q_e[next_t, next_states], axis=-1)
        q_l, counts_l = _batch_update(q_l, counts_l, times, states, actions_l, target_l, exponent)
        q_e, counts_e = _batch_update(q_e, counts_e, times, states, actions_e, target_e, exponent)
        visits = visits.at[times, states].add(1.0)
        return (q_l, q_e, counts_l, counts_e, visits), None

    init = (jnp.zeros((horizon, num_states, num_l), dtype), jnp.zeros((horizon, num_states, num_e), dtype),
            jnp.zeros((horizon, num_states, num_l), dtype), jnp.zeros((horizon, num_states, num_e), dtype),
            jnp.zeros((horizon, num_states), dtype))
    (q_l, q_e, _, _, visits), _ = jax.lax.scan(one_batch, init, jax.random.split(key, num_batches))
    policy = JointPolicy(top_two_policy(q_l, best_prob), top_two_policy(q_e, best_prob), None)
    return QLearningResult(policy, q_l, q_e, visits)


def q_learning(key: jax.Array, game: TabularGame, learner_reward, expert_reward, *, num_episodes: int = 32_768,
               batch_size: int = 64, greedy_prob: float = 0.7, best_prob: float = 0.6,
               learning_rate_exponent: float = 0.6) -> QLearningResult:
    """Independent tabular Q-learning of both players with the A.10.3 exploration rule.

    Args:
        key: PRNG key (the result is a pure function of it).
        game: a TabularGame (dense or sparse dynamics).
        learner_reward, expert_reward: [S, A_l, A_e] reward tables (the learner's includes r_li).
        num_episodes: training episodes (rounded up to a multiple of ``batch_size``).
        batch_size: episodes rolled out per update.
        greedy_prob: probability of the top-two mix during training (paper: 0.7).
        best_prob: probability of the best action within the top-two mix and in the exploited policy (0.6).
        learning_rate_exponent: ω in the count-based step ``n^-ω``; in (0.5, 1] for convergence.
    Returns:
        QLearningResult with the exploited JointPolicy.
    """
    for name, value in (("num_episodes", num_episodes), ("batch_size", batch_size)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    for name, value in (("greedy_prob", greedy_prob), ("best_prob", best_prob)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name}: expected a probability in [0, 1], got {value!r}")
    if not 0.0 < learning_rate_exponent <= 1.0:
        raise ValueError(f"learning_rate_exponent: expected a number in (0, 1], got {learning_rate_exponent!r}")
    for name, table in (("learner_reward", learner_reward), ("expert_reward", expert_reward)):
        if tuple(jnp.shape(table)) != game.joint_shape:
            raise ValueError(f"{name}: expected shape {game.joint_shape}, got {tuple(jnp.shape(table))}")
    num_batches = -(-int(num_episodes) // int(batch_size))
    return _train(key, game.dynamics, game.initial, jnp.asarray(learner_reward), jnp.asarray(expert_reward),
                  game.discount, game.horizon, num_batches, int(batch_size), float(greedy_prob),
                  float(best_prob), float(learning_rate_exponent))
