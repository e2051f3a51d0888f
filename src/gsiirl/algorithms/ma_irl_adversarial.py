"""Passive MA-IRL, adversarial-equilibrium variant (after Lin, Adams & Beling, JAIR 2019), as a convex QP.

The learner does not interact: it receives demonstrations of joint play made with both TRUE rewards
and learns both reward functions from them. Lin et al.'s advE variant exploits that in an adversarial
(zero-sum) game one reward determines the other; here the defender's reward is ``r_ld + r_li`` with
``r_ld = -r_e`` and ``r_li`` known, so ONE weight vector θ_e is learned and ``θ_l = -θ_e``
(``zero_sum=False`` fits the two players separately instead).

Equilibrium conditions. For a fixed (demonstrated) joint policy π and a linear reward ``r_i = φ·θ_i + c_i``
(``c_l = r_li``, ``c_e = 0``), the entropy-regularised action value of player i is linear in θ_i:
``q_i^t(s, a_i) = ψ_i^t(s, a_i)·θ_i + k_i^t(s, a_i)`` where ψ are successor features of π (backward
recursion, ``Ψ^t = φ + γ E_{s'}[Σ_{a'} π^{t+1}(a'|s') Ψ^{t+1}(s', a')]``, then averaged over the other
player's action) and ``k_i`` collects the known reward ``c_i`` and the entropy bonuses ``α H(π_i)`` of the
soft equilibrium (DESIGN §3). π is soft-Nash play of θ iff, at every (t, s), for every action,

    q_i(a) - Σ_b π_i(b) q_i(b) = α (log π_i(a) - Σ_b π_i(b) log π_i(b))       (one-shot deviation, logit form)

These conditions are linear in θ. We minimise their squared violation, weighted by the empirical
visitation of (t, s) and by π̂_i(a|s), over θ in the ball ``||θ|| <= radius`` — a convex quadratic
programme, solved with scipy (SLSQP on the d-dimensional normal equations; a tiny ridge makes the
solution unique). Why not Lin et al.'s hard margin LP: the demonstrations come from stochastic
(full-support) equilibrium play, and a full-support mixed best response needs all action values equal,
which θ = 0 satisfies trivially; the logit condition above is the margin that soft play actually has.

Requirements: linear reward model (its features are read off by differentiating ``table`` at 0, so the
dense [S, A_l, A_e, d] array must fit in memory — n <= 12 nodes for the security game), known dynamics.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import minimize

from gsiirl.games.tabular import TabularGame, expected_next_value
from gsiirl.solvers.equilibrium import JointPolicy
from gsiirl.solvers.sampling import Trajectories

MAX_FEATURE_ENTRIES = 60_000_000


class AdversarialIRLResult(NamedTuple):
    """theta_learner, theta_expert: [d] learned weights (θ_l = -θ_e when zero_sum);
    residual: weighted root-mean-square violation of the equilibrium conditions at the solution;
    demonstrated: the (smoothed) empirical JointPolicy the conditions were built from."""

    theta_learner: np.ndarray
    theta_expert: np.ndarray
    residual: float
    demonstrated: JointPolicy


def empirical_policy(trajectories: Trajectories, joint_shape, horizon: int, smoothing: float = 0.5):
    """Smoothed per-stage empirical marginals of the demonstrations.

    Returns (JointPolicy(learner [T,S,A_l], expert [T,S,A_e]), state_counts [T,S]). Unvisited states get
    uniform policies; ``smoothing`` pseudo-counts are added to every action of visited states.
    """
    num_states, num_l, num_e = joint_shape
    states = np.asarray(trajectories.states)
    if states.ndim != 2 or states.shape[1] != horizon:
        raise ValueError(f"trajectories: expected states of shape [N, {horizon}], got {states.shape}")
    times = np.broadcast_to(np.arange(horizon), states.shape)
    counts_l = np.zeros((horizon, num_states, num_l))
    counts_e = np.zeros((horizon, num_states, num_e))
    np.add.at(counts_l, (times, states, np.asarray(trajectories.learner_actions)), 1.0)
    np.add.at(counts_e, (times, states, np.asarray(trajectories.expert_actions)), 1.0)
    visits = counts_l.sum(axis=2)
    learner = (counts_l + smoothing) / (visits[..., None] + smoothing * num_l)
    expert = (counts_e + smoothing) / (visits[..., None] + smoothing * num_e)
    return JointPolicy(jnp.asarray(learner), jnp.asarray(expert), None), jnp.asarray(visits)


def _entropy(probs):
    return -jnp.sum(probs * jnp.log(jnp.maximum(probs, 1e-30)), axis=-1)


@partial(jax.jit, static_argnames=("horizon",))
def _normal_equations(dynamics, features, known_learner, policy_l, policy_e, state_weights, discount,
                      temperature, horizon: int):
    """Weighted normal equations (G_i = Σ w A_iᵀA_i, g_i = Σ w A_iᵀ y_i, c_i = Σ w y_i²) of both players."""
    num_states, num_l, num_e, dim = features.shape
    dtype = features.dtype

    def stage(carry, inputs):
        future_features, future_known_l, future_known_e = carry  # [S, d], [S], [S]
        pi_l, pi_e, weight = inputs  # [S, A_l], [S, A_e], [S]
        psi = features + discount * expected_next_value(dynamics, future_features)  # [S, A_l, A_e, d]
        known_l = known_learner + discount * expected_next_value(dynamics, future_known_l)
        known_e = discount * expected_next_value(dynamics, future_known_e)
        outputs = []
        for psi_i, known_i, pi_i in (
            (jnp.einsum("slef,se->slf", psi, pi_e), jnp.einsum("sle,se->sl", known_l, pi_e), pi_l),
            (jnp.einsum("slef,sl->sef", psi, pi_l), jnp.einsum("sle,sl->se", known_e, pi_l), pi_e),
        ):
            log_pi = jnp.log(jnp.maximum(pi_i, 1e-30))
            rows = psi_i - jnp.einsum("sa,saf->sf", pi_i, psi_i)[:, None, :]  # centred ψ, [S, A_i, d]
            target = temperature * (log_pi - jnp.sum(pi_i * log_pi, -1, keepdims=True))
            target = target - (known_i - jnp.sum(pi_i * known_i, -1, keepdims=True))  # y, [S, A_i]
            row_weight = weight[:, None] * pi_i
            outputs.append((jnp.einsum("sa,saf,sag->fg", row_weight, rows, rows),
                            jnp.einsum("sa,saf,sa->f", row_weight, rows, target),
                            jnp.sum(row_weight * target ** 2)))
        joint = pi_l[:, :, None] * pi_e[:, None, :]
        next_carry = (jnp.einsum("sle,slef->sf", joint, psi),
                      jnp.sum(joint * known_l, axis=(1, 2)) + temperature * _entropy(pi_l),
                      jnp.sum(joint * known_e, axis=(1, 2)) + temperature * _entropy(pi_e))
        return next_carry, outputs

    init = (jnp.zeros((num_states, dim), dtype), jnp.zeros((num_states,), dtype), jnp.zeros((num_states,), dtype))
    _, outputs = jax.lax.scan(stage, init, (policy_l, policy_e, state_weights), reverse=True)
    return jax.tree_util.tree_map(lambda x: jnp.sum(x, axis=0), outputs)


def _solve_ball_qp(gram: np.ndarray, linear: np.ndarray, radius: float, ridge: float) -> np.ndarray:
    """argmin θᵀGθ − 2gᵀθ + ridge ||θ||² subject to ||θ||² <= radius² (convex; scipy SLSQP)."""
    gram = gram + ridge * np.eye(gram.shape[0])
    scale = max(float(np.max(np.abs(gram))), 1e-12)
    g, b = gram / scale, linear / scale
    start = np.linalg.lstsq(g, b, rcond=None)[0]
    start_norm = np.linalg.norm(start)
    if start_norm <= radius:
        return start
    result = minimize(lambda th: th @ g @ th - 2 * b @ th, start * (radius / start_norm),
                      jac=lambda th: 2 * (g @ th - b), method="SLSQP",
                      constraints=[{"type": "ineq", "fun": lambda th: radius ** 2 - th @ th,
                                    "jac": lambda th: -2 * th}],
                      options={"maxiter": 500, "ftol": 1e-12})
    theta = result.x
    norm = np.linalg.norm(theta)
    return theta if norm <= radius else theta * (radius / norm)


def ma_irl_adversarial(game: TabularGame, reward_model, demonstrations, *, temperature: float = 1.0,
                       radius: float = 1.0, zero_sum: bool = True, smoothing: float = 0.5,
                       ridge: float = 1e-6) -> AdversarialIRLResult:
    """Learn both players' reward weights from demonstrations of equilibrium play (no interaction).

    Args:
        game: known dynamics, initial distribution, horizon, discount and the known ``r_li``
            (``learner_oracle`` and ``expert_reward`` are never read).
        reward_model: a LINEAR reward model (``table`` linear in θ) used for both ``r_ld`` and ``r_e``.
        demonstrations: :class:`Trajectories` of joint play under the TRUE rewards, or a
            :class:`JointPolicy` (the infinite-data limit; states are then weighted by its occupancy).
        temperature: α of the soft equilibrium the demonstrations are modelled as.
        radius: parameter ball radius.
        zero_sum: learn one θ_e with θ_l = −θ_e (adversarial variant) or fit each player separately.
        smoothing: pseudo-counts of the empirical policy.
        ridge: tiny Tikhonov term making the minimiser unique.
    Returns:
        AdversarialIRLResult.
    """
    if not temperature > 0:
        raise ValueError(f"temperature: expected a positive number, got {temperature!r}")
    if not radius > 0:
        raise ValueError(f"radius: expected a positive number, got {radius!r}")
    dim = int(reward_model.num_params)
    if game.num_states * game.num_learner_actions * game.num_expert_actions * dim > MAX_FEATURE_ENTRIES:
        raise ValueError(f"reward_model: dense features [S, A_l, A_e, {dim}] too large for the convex programme "
                         f"(> {MAX_FEATURE_ENTRIES:,} entries); use the passive maximum-likelihood MA-IRL")
    zeros = jnp.zeros(dim)
    features = jax.jacfwd(reward_model.table)(zeros)  # [S, A_l, A_e, d]
    if tuple(features.shape[:3]) != game.joint_shape:
        raise ValueError(f"reward_model: table shape {tuple(features.shape[:3])} != game {game.joint_shape}")
    probe = jax.random.normal(jax.random.PRNGKey(0), (dim,))
    if not np.allclose(np.asarray(reward_model.table(probe)),
                       np.asarray(jnp.tensordot(features, probe, 1)), atol=1e-4):
        raise ValueError("reward_model: expected a linear reward model (table(θ) = φ·θ)")

    if isinstance(demonstrations, JointPolicy):
        from gsiirl.solvers.occupancy import occupancy

        demonstrated = demonstrations
        state_weights = occupancy(game, demonstrated).sum(axis=(2, 3))
    elif isinstance(demonstrations, Trajectories):
        from gsiirl.algorithms.interaction import check_trajectories

        demonstrations = check_trajectories(demonstrations, game, source="demonstrations")
        demonstrated, counts = empirical_policy(demonstrations, game.joint_shape, game.horizon, smoothing)
        state_weights = counts / demonstrations.states.shape[0]
    else:
        raise ValueError(f"demonstrations: expected Trajectories or JointPolicy, got {type(demonstrations).__name__}")

    (gram_l, lin_l, const_l), (gram_e, lin_e, const_e) = jax.tree_util.tree_map(
        lambda x: np.asarray(x, dtype=np.float64),
        _normal_equations(game.dynamics, features, jnp.broadcast_to(game.learner_reward[:, :, None], game.joint_shape),
                          demonstrated.learner, demonstrated.expert, state_weights, game.discount,
                          float(temperature), game.horizon))
    total_weight = 2.0 * float(np.sum(state_weights))
    if zero_sum:  # θ_l = −θ_e: learner rows enter with a flipped sign
        gram, linear = gram_l + gram_e, lin_e - lin_l
        theta_e = _solve_ball_qp(gram, linear, radius, ridge)
        theta_l = -theta_e
        squared = theta_e @ gram @ theta_e - 2 * linear @ theta_e + const_l + const_e
    else:
        theta_l = _solve_ball_qp(gram_l, lin_l, radius, ridge)
        theta_e = _solve_ball_qp(gram_e, lin_e, radius, ridge)
        squared = (theta_l @ gram_l @ theta_l - 2 * lin_l @ theta_l + const_l
                   + theta_e @ gram_e @ theta_e - 2 * lin_e @ theta_e + const_e)
    residual = float(np.sqrt(max(squared, 0.0) / max(total_weight, 1e-30)))
    return AdversarialIRLResult(theta_l, theta_e, residual, demonstrated)
