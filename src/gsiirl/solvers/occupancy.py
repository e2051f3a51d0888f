"""Forward occupancy measures, returns and feature expectations for tabular games (DESIGN §2).

``occupancy_t(s, a) = P(s^t = s, a^t = a)`` under a joint policy; the discounted occupancy
``Σ_t γ^t occupancy_t`` turns every expectation of the form ``E[Σ_t γ^t g(s^t, a^t)]`` into a dot
product, in particular the feature expectation μ(π) = E[Σ_t γ^t ∇_θ r^θ(s^t, a^t)] (Lemma 1).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from gsiirl.games.tabular import Dynamics, TabularGame, push_forward
from gsiirl.solvers.equilibrium import JointPolicy


@partial(jax.jit, static_argnames=("discounted",))
def _forward(dynamics: Dynamics, initial, policy: JointPolicy, discount, discounted: bool):
    joint = policy.joint_probs()  # [T, S, A_l, A_e]

    def step(carry, joint_t):
        state_dist, weight, total = carry
        mass = state_dist[:, None, None] * joint_t
        next_dist = push_forward(dynamics, mass)
        if discounted:
            return (next_dist, weight * discount, total + weight * mass), None
        return (next_dist, weight, total), mass

    init = (initial, jnp.asarray(1.0, joint.dtype), jnp.zeros(joint.shape[1:], joint.dtype))
    (_, _, total), per_step = jax.lax.scan(step, init, joint)
    return total if discounted else per_step


def occupancy(game: TabularGame, policy: JointPolicy) -> jax.Array:
    """State-action occupancy per stage, [T, S, A_l, A_e] (each stage sums to 1)."""
    return _forward(game.dynamics, game.initial, policy, game.discount, False)


def discounted_occupancy(game: TabularGame, policy: JointPolicy) -> jax.Array:
    """Σ_t γ^t occupancy_t, [S, A_l, A_e] (computed without storing the per-stage occupancies)."""
    return _forward(game.dynamics, game.initial, policy, game.discount, True)


def expected_return(game: TabularGame, policy: JointPolicy, reward_table: jax.Array) -> jax.Array:
    """E_π[Σ_t γ^t r(s^t, a^t)] for a reward table [S, A_l, A_e] -> scalar."""
    return jnp.sum(discounted_occupancy(game, policy) * reward_table)


def feature_expectation(table_fn, theta: jax.Array, weights: jax.Array) -> jax.Array:
    """μ = Σ_{s,a} weights(s, a) ∇_θ r^θ(s, a) for a reward-table function θ [d] -> [S, A_l, A_e].

    With ``weights`` a discounted occupancy this is E[Σ_t γ^t ∇_θ r^θ(s^t, a^t)] (paper §6.1); computed
    as one vector-Jacobian product, so linear and neural reward models share it. Returns [d].
    """
    _, pullback = jax.vjp(table_fn, theta)
    return pullback(weights)[0]


def state_visitation(occupancy_per_stage: jax.Array) -> jax.Array:
    """[T, S, A_l, A_e] -> [T, S] state distribution per stage."""
    return occupancy_per_stage.sum(axis=(2, 3))
