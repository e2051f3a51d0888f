"""Vectorised trajectory sampling from a joint policy and empirical occupancies of trajectories."""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from gsiirl.games.tabular import DenseDynamics, Dynamics, TabularGame
from gsiirl.solvers.equilibrium import JointPolicy


class Trajectories(NamedTuple):
    """A batch of N trajectories of length T: states, learner_actions, expert_actions, each [N, T] int32."""

    states: jax.Array
    learner_actions: jax.Array
    expert_actions: jax.Array


@partial(jax.jit, static_argnames=("num_trajectories",))
def _sample(key, dynamics: Dynamics, initial, policy: JointPolicy, num_trajectories: int) -> Trajectories:
    horizon = policy.learner.shape[0]
    num_e = policy.expert.shape[2]
    init_key, key = jax.random.split(key)
    states0 = jax.random.choice(init_key, initial.shape[0], (num_trajectories,), p=initial).astype(jnp.int32)

    def step(states, inputs):
        step_key, t = inputs
        key_l, key_e, key_s = jax.random.split(step_key, 3)
        if policy.joint is not None:
            joint = policy.joint[t][states].reshape(num_trajectories, -1)
            flat = jax.random.categorical(key_l, jnp.log(jnp.maximum(joint, 1e-38)))
            actions_l, actions_e = flat // num_e, flat % num_e
        else:
            actions_l = jax.random.categorical(key_l, jnp.log(jnp.maximum(policy.learner[t][states], 1e-38)))
            actions_e = jax.random.categorical(key_e, jnp.log(jnp.maximum(policy.expert[t][states], 1e-38)))
        if isinstance(dynamics, DenseDynamics):
            probs = dynamics.transitions[states, actions_l, actions_e]
            next_states = jax.random.categorical(key_s, jnp.log(jnp.maximum(probs, 1e-38)))
        else:
            probs = dynamics.successor_probs[states, actions_l, actions_e]
            slot = jax.random.categorical(key_s, jnp.log(jnp.maximum(probs, 1e-38)))
            next_states = jnp.take_along_axis(
                dynamics.successor_states[states, actions_l, actions_e], slot[:, None], axis=1)[:, 0]
        return next_states.astype(jnp.int32), (states, actions_l, actions_e)

    keys = jax.random.split(key, horizon)
    _, (states, actions_l, actions_e) = jax.lax.scan(step, states0, (keys, jnp.arange(horizon)))
    return Trajectories(states.T.astype(jnp.int32), actions_l.T.astype(jnp.int32), actions_e.T.astype(jnp.int32))


def sample_trajectories(key: jax.Array, game: TabularGame, policy: JointPolicy, num_trajectories: int) -> Trajectories:
    """Sample ``num_trajectories`` trajectories of length T from ``game`` under ``policy``."""
    if isinstance(num_trajectories, bool) or int(num_trajectories) != num_trajectories or num_trajectories < 1:
        raise ValueError(f"num_trajectories: expected a positive integer, got {num_trajectories!r}")
    return _sample(key, game.dynamics, game.initial, policy, int(num_trajectories))


@partial(jax.jit, static_argnames=("joint_shape", "horizon"))
def _empirical(trajectories: Trajectories, joint_shape, horizon):
    num = trajectories.states.shape[0]
    counts = jnp.zeros((horizon,) + tuple(joint_shape), jnp.result_type(float))
    times = jnp.broadcast_to(jnp.arange(horizon), trajectories.states.shape)
    counts = counts.at[times, trajectories.states, trajectories.learner_actions, trajectories.expert_actions].add(1.0)
    return counts / num


def empirical_occupancy(trajectories: Trajectories, joint_shape: tuple[int, int, int], horizon: int) -> jax.Array:
    """Per-stage empirical frequencies of (s, a_l, a_e) in the data, [T, S, A_l, A_e] (each stage sums to 1)."""
    if trajectories.states.shape[1] != horizon:
        raise ValueError(f"trajectories: expected length T={horizon}, got {trajectories.states.shape[1]}")
    return _empirical(trajectories, tuple(int(n) for n in joint_shape), int(horizon))


def discount_weights(horizon: int, discount: float) -> jax.Array:
    """[T] vector of γ^t."""
    return discount ** jnp.arange(horizon, dtype=jnp.result_type(float))
