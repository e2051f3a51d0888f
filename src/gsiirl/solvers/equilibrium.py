"""Entropy-regularised equilibrium solvers for finite-horizon tabular Markov games (DESIGN §3).

Two models map a pair of joint reward tables to a time-indexed joint policy:

* ``soft_nash`` (default, general-sum): the logit / quantal-response Markov equilibrium. Backward
  induction; at every stage each player soft-best-responds to the other's policy:
  ``π_l(a_l|s) ∝ exp(Σ_{a_e} π_e(a_e|s) Q_l(s,a_l,a_e) / α)`` and symmetrically for the expert, with
  ``Q_i = r_i + γ E[V_i^{t+1}(s')]`` and ``V_i = E_π[Q_i] + α H(π_i)``. The stage fixed point is found by
  an extragradient iteration on the logits started from uniform policies (this is the equilibrium
  selection rule: deterministic, the same for both players), with a per-state step 1 / (1 + L_s) where
  L_s bounds the Lipschitz constant of the best-response map. The residual of every stage is returned
  so that non-convergence is visible.
* ``joint_soft``: the paper's Appendix A.2 model (eqs. 5–7): one soft Q over the joint action with the
  SUM of both rewards, ``V = α log Σ_a exp(Q/α)``, ``π(a|s) = exp((Q − V)/α)`` (a team game).

Both are pure, jit-compiled and differentiable (the fixed-point iteration is unrolled with ``lax.scan``).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from gsiirl.games.tabular import Dynamics, TabularGame, expected_next_value
from gsiirl.solvers.small_linear import solve_small

EQUILIBRIUM_MODELS = ("soft_nash", "joint_soft")
DEFAULT_ITERATIONS = 10
NEWTON_STEPS = 3
# Reverse-mode AD through ``soft_nash`` (the likelihood's exact gradient: MA-IRL, lower_gradient="autodiff",
# the exact hypergradient) stores every stage's fixed-point iterates, ≈ 24 bytes (float32) per entry of
# S·T·iterations·(A_l + A_e): 12 KB per state and stage at 4×4 actions and 60 iterations, 55 GB for
# S = 50,000, T = 100. Above this many entries (≈ 400 MB) each stage is rematerialised instead
# (jax.checkpoint): the backward pass recomputes one stage at a time, memory O(S·T + S·A·iterations), ≈ 30 %
# more time for a gradient. Below it nothing changes (every experiment's game is far below).
REMATERIALISE_ABOVE = 1 << 24


class JointPolicy(NamedTuple):
    """Time-indexed joint policy.

    learner: [T, S, A_l] learner marginal; expert: [T, S, A_e] expert marginal;
    joint: ``None`` when the joint policy is the product of the marginals (``soft_nash``), otherwise the
    joint probabilities [T, S, A_l, A_e] (``joint_soft``).
    """

    learner: jax.Array
    expert: jax.Array
    joint: Optional[jax.Array] = None

    def joint_probs(self) -> jax.Array:
        """[T, S, A_l, A_e] joint action probabilities."""
        if self.joint is not None:
            return self.joint
        return self.learner[..., :, None] * self.expert[..., None, :]

    def log_joint_probs(self) -> jax.Array:
        """[T, S, A_l, A_e] log joint probabilities (floored at 1e-30 so that gradients stay finite)."""
        if self.joint is not None:
            return jnp.log(jnp.maximum(self.joint, 1e-30))
        return (jnp.log(jnp.maximum(self.learner, 1e-30))[..., :, None]
                + jnp.log(jnp.maximum(self.expert, 1e-30))[..., None, :])


class EquilibriumResult(NamedTuple):
    """policy: JointPolicy; learner_value / expert_value: soft values at t = 0, [S];
    residual: [T] largest change of a policy probability in the last fixed-point iteration of each
    stage (0 for ``joint_soft``, which is closed-form)."""

    policy: JointPolicy
    learner_value: jax.Array
    expert_value: jax.Array
    residual: jax.Array


def _entropy(probs: jax.Array) -> jax.Array:
    return -jnp.sum(probs * jnp.log(jnp.maximum(probs, 1e-30)), axis=-1)


def _solve_two_block(upper, lower, rhs_l, rhs_e):
    """Solve ``[[I, −U], [−L, I]] [d_l; d_e] = [r_l; r_e]`` per state through the Schur complement of
    the smaller block: ``(I − U L) d_l = r_l + U r_e``, ``d_e = r_e + L d_l`` (or the mirror image).

    upper U [S, A_l, A_e], lower L [S, A_e, A_l], rhs_l [S, A_l], rhs_e [S, A_e] -> [S, A_l + A_e].
    One min(A_l, A_e)-sized system per state instead of an (A_l + A_e)-sized one: ≈ 4× less time on CPU,
    where these small batched solves dominate a Newton step; solved by :func:`solve_small` (vectorised
    elimination instead of one LAPACK call per state).
    """
    num_l, num_e = upper.shape[1], upper.shape[2]
    if num_l <= num_e:
        schur = jnp.eye(num_l, dtype=upper.dtype) - upper @ lower
        d_l = solve_small(schur, rhs_l + jnp.einsum("sle,se->sl", upper, rhs_e))
        d_e = rhs_e + jnp.einsum("sel,sl->se", lower, d_l)
    else:
        schur = jnp.eye(num_e, dtype=upper.dtype) - lower @ upper
        d_e = solve_small(schur, rhs_e + jnp.einsum("sel,sl->se", lower, rhs_l))
        d_l = rhs_l + jnp.einsum("sle,se->sl", upper, d_e)
    return jnp.concatenate([d_l, d_e], axis=1)


def _stage_logit_equilibrium(q_learner, q_expert, temperature, iterations, newton_steps=NEWTON_STEPS):
    """Logit equilibrium of the stage games at every state.

    ``iterations`` extragradient steps on the logits from uniform policies, then ``newton_steps``
    Newton steps on ``z − BR(z) = 0`` (a (A_l + A_e)-dimensional system per state; a step that is not
    finite or does not reduce the residual is rejected).
    q_learner, q_expert: [S, A_l, A_e]. Returns (π_l [S, A_l], π_e [S, A_e], residual scalar).
    """
    num_states, num_l, num_e = q_learner.shape
    # Lipschitz bound of the best-response map: softmax's Jacobian annihilates constants, so only the
    # spread of each player's Q over the OTHER player's actions matters.
    spread_l = jnp.max(jnp.max(q_learner, axis=2) - jnp.min(q_learner, axis=2), axis=1)
    spread_e = jnp.max(jnp.max(q_expert, axis=1) - jnp.min(q_expert, axis=1), axis=1)
    lipschitz = jax.lax.stop_gradient(jnp.maximum(spread_l, spread_e) / (2.0 * temperature))
    step = (1.0 / (1.0 + lipschitz))[:, None]  # [S, 1]

    def best_response_logits(logits_l, logits_e):
        pi_l = jax.nn.softmax(logits_l, axis=-1)
        pi_e = jax.nn.softmax(logits_e, axis=-1)
        target_l = jnp.einsum("sle,se->sl", q_learner, pi_e) / temperature
        target_e = jnp.einsum("sle,sl->se", q_expert, pi_l) / temperature
        return target_l, target_e

    def extragradient(carry, _):
        logits_l, logits_e = carry
        target_l, target_e = best_response_logits(logits_l, logits_e)
        half_l = logits_l + step * (target_l - logits_l)
        half_e = logits_e + step * (target_e - logits_e)
        target_l, target_e = best_response_logits(half_l, half_e)
        return (logits_l + step * (target_l - half_l), logits_e + step * (target_e - half_e)), None

    def gap(logits):
        target_l, target_e = best_response_logits(logits[:, :num_l], logits[:, num_l:])
        return logits - jnp.concatenate([target_l, target_e], axis=1)

    def newton(logits, _):
        residual = gap(logits)
        pi_l = jax.nn.softmax(logits[:, :num_l], axis=-1)
        pi_e = jax.nn.softmax(logits[:, num_l:], axis=-1)
        # Q · (diag(π) − π πᵀ) = Q diag(π) − (Q π) πᵀ: the softmax Jacobian without forming it (3× faster)
        expected_l = jnp.einsum("sle,se->sl", q_learner, pi_e)
        expected_e = jnp.einsum("sle,sl->se", q_expert, pi_l)
        upper = (q_learner * pi_e[:, None, :] - expected_l[:, :, None] * pi_e[:, None, :]) / temperature  # ∂target_l/∂z_e
        lower = (jnp.swapaxes(q_expert, 1, 2) * pi_l[:, None, :]
                 - expected_e[:, :, None] * pi_l[:, None, :]) / temperature  # ∂target_e/∂z_l
        direction = _solve_two_block(upper, lower, residual[:, :num_l], residual[:, num_l:])
        current = jnp.max(jnp.abs(residual), axis=1)
        best, best_gap = logits, current
        for fraction in (0.25, 0.5, 1.0):  # backtracking: keep the largest improving step
            candidate = logits - fraction * direction
            candidate_gap = jnp.max(jnp.abs(gap(candidate)), axis=1)
            better = jnp.isfinite(candidate_gap) & (candidate_gap < current)
            best = jnp.where(better[:, None], candidate, best)
            best_gap = jnp.where(better, candidate_gap, best_gap)
        return best, None

    init = (jnp.zeros((num_states, num_l), q_learner.dtype), jnp.zeros((num_states, num_e), q_learner.dtype))
    (logits_l, logits_e), _ = jax.lax.scan(extragradient, init, None, length=iterations)
    logits, _ = jax.lax.scan(newton, jnp.concatenate([logits_l, logits_e], axis=1), None, length=newton_steps)
    logits_l, logits_e = logits[:, :num_l], logits[:, num_l:]
    pi_l = jax.nn.softmax(logits_l, axis=-1)
    pi_e = jax.nn.softmax(logits_e, axis=-1)
    target_l, target_e = best_response_logits(logits_l, logits_e)
    residual = jnp.maximum(
        jnp.max(jnp.abs(jax.nn.softmax(target_l, axis=-1) - pi_l)),
        jnp.max(jnp.abs(jax.nn.softmax(target_e, axis=-1) - pi_e)),
    )
    return pi_l, pi_e, jax.lax.stop_gradient(residual)


@partial(jax.jit, static_argnames=("horizon", "iterations"))
def soft_nash(dynamics: Dynamics, learner_reward, expert_reward, discount, temperature, horizon: int,
              iterations: int = DEFAULT_ITERATIONS) -> EquilibriumResult:
    """Entropy-regularised Markov Nash equilibrium by backward induction (DESIGN §3).

    learner_reward, expert_reward: [S, A_l, A_e] (the learner's table already includes r_li).
    """
    num_states = learner_reward.shape[0]

    def stage(values, _):
        next_values = expected_next_value(dynamics, values)  # [S, A_l, A_e, 2]
        q_learner = learner_reward + discount * next_values[..., 0]
        q_expert = expert_reward + discount * next_values[..., 1]
        pi_l, pi_e, residual = _stage_logit_equilibrium(q_learner, q_expert, temperature, iterations)
        joint = pi_l[:, :, None] * pi_e[:, None, :]
        value_l = jnp.sum(joint * q_learner, axis=(1, 2)) + temperature * _entropy(pi_l)
        value_e = jnp.sum(joint * q_expert, axis=(1, 2)) + temperature * _entropy(pi_e)
        return jnp.stack([value_l, value_e], axis=-1), (pi_l, pi_e, residual)

    terminal = jnp.zeros((num_states, 2), learner_reward.dtype)
    num_l, num_e = learner_reward.shape[1:]
    if num_states * horizon * iterations * (num_l + num_e) > REMATERIALISE_ABOVE:
        stage = jax.checkpoint(stage)  # same values; under reverse-mode AD one stage's iterates at a time
    values, (pi_l, pi_e, residual) = jax.lax.scan(stage, terminal, None, length=horizon, reverse=True)
    return EquilibriumResult(JointPolicy(pi_l, pi_e, None), values[:, 0], values[:, 1], residual)


@partial(jax.jit, static_argnames=("horizon",))
def joint_soft(dynamics: Dynamics, learner_reward, expert_reward, discount, temperature,
               horizon: int) -> EquilibriumResult:
    """The paper's joint soft-Q model (Appendix A.2, eqs. 5–7) with the summed reward."""
    total_reward = learner_reward + expert_reward
    num_states = total_reward.shape[0]

    def stage(value, _):
        q = total_reward + discount * expected_next_value(dynamics, value)  # eq. 5
        flat = q.reshape(num_states, -1) / temperature
        new_value = temperature * jax.nn.logsumexp(flat, axis=-1)  # eq. 6
        joint = jax.nn.softmax(flat, axis=-1).reshape(q.shape)  # eq. 7
        return new_value, joint

    terminal = jnp.zeros((num_states,), total_reward.dtype)
    value, joint = jax.lax.scan(stage, terminal, None, length=horizon, reverse=True)
    policy = JointPolicy(joint.sum(axis=3), joint.sum(axis=2), joint)
    return EquilibriumResult(policy, value, value, jnp.zeros((horizon,), total_reward.dtype))


def solve_equilibrium(game: TabularGame, learner_reward, expert_reward, *, model: str = "soft_nash",
                      temperature: float = 1.0, iterations: int = DEFAULT_ITERATIONS) -> EquilibriumResult:
    """Equilibrium of ``game`` for the given reward tables [S, A_l, A_e] (learner's includes r_li).

    Args:
        model: "soft_nash" (general-sum logit equilibrium, default) or "joint_soft" (paper A.2).
        temperature: entropy temperature α > 0.
        iterations: extragradient iterations per stage (``soft_nash`` only).
    """
    if model not in EQUILIBRIUM_MODELS:
        raise ValueError(f"model: expected one of {EQUILIBRIUM_MODELS}, got {model!r}")
    if not temperature > 0:
        raise ValueError(f"temperature: expected a positive number, got {temperature!r}")
    if isinstance(iterations, bool) or int(iterations) != iterations or iterations < 1:
        raise ValueError(f"iterations: expected a positive integer, got {iterations!r}")
    for name, table in (("learner_reward", learner_reward), ("expert_reward", expert_reward)):
        if tuple(jnp.shape(table)) != game.joint_shape:
            raise ValueError(f"{name}: expected shape {game.joint_shape}, got {tuple(jnp.shape(table))}")
        # numpy on the host: inside a trace even a concrete array's jnp ops are staged (tracers)
        if not isinstance(table, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(table))):
            raise ValueError(f"{name}: contains NaN or infinite values; expected finite rewards")
    if model == "joint_soft":
        return joint_soft(game.dynamics, learner_reward, expert_reward, game.discount, temperature, game.horizon)
    return soft_nash(game.dynamics, learner_reward, expert_reward, game.discount, temperature, game.horizon,
                     int(iterations))


@partial(jax.jit, static_argnames=("horizon",))
def expert_soft_best_response(dynamics: Dynamics, learner_policy, expert_reward, discount, temperature,
                              horizon: int) -> jax.Array:
    """The expert's soft-optimal (MaxEnt) policy [T, S, A_e] against a FIXED learner policy [T, S, A_l].

    With the learner fixed the expert faces a single-agent MDP; this is the object Lemma 1 is exact for.
    """
    num_states = expert_reward.shape[0]

    def stage(value, learner_t):
        q = expert_reward + discount * expected_next_value(dynamics, value)  # [S, A_l, A_e]
        q_expert = jnp.einsum("sle,sl->se", q, learner_t) / temperature
        return temperature * jax.nn.logsumexp(q_expert, axis=-1), jax.nn.softmax(q_expert, axis=-1)

    terminal = jnp.zeros((num_states,), expert_reward.dtype)
    _, policy = jax.lax.scan(stage, terminal, learner_policy, length=horizon, reverse=True)
    return policy
