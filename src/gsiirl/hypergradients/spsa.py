"""SPSA hypergradient (paper eq. 4 and Algorithm 1 lines 11–14; DESIGN §4).

One implementation for every back-end: the back-end supplies a batched ``evaluate`` (see
:class:`gsiirl.hypergradients.types.LowerLevelEvaluation`) and receives every perturbed parameter pair
in one batch, so it can vmap them.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from gsiirl.hypergradients.cg import conjugate_gradient, lift_to_positive_definite
from gsiirl.hypergradients.types import Evaluate, HypergradientEstimate

SPSAEstimate = HypergradientEstimate


def perturbation_batch(key: jax.Array, theta_l: jax.Array, theta_e: jax.Array, perturbation: float,
                       num_samples: int):
    """Rademacher directions and the batch of perturbed pairs.

    Returns (delta_l [d_l], delta_e [n, d_e], theta_l_batch [2 + 2n, d_l], theta_e_batch [2 + 2n, d_e]);
    rows: (θl + pΔl, θe), (θl − pΔl, θe), then (θl, θe + pΔe_j) for j < n, then (θl, θe − pΔe_j).
    """
    key_l, key_e = jax.random.split(key)
    delta_l = jax.random.rademacher(key_l, theta_l.shape, dtype=theta_l.dtype)
    delta_e = jax.random.rademacher(key_e, (num_samples,) + theta_e.shape, dtype=theta_e.dtype)
    thetas_l = jnp.concatenate([
        jnp.stack([theta_l + perturbation * delta_l, theta_l - perturbation * delta_l]),
        jnp.broadcast_to(theta_l, (2 * num_samples,) + theta_l.shape),
    ])
    thetas_e = jnp.concatenate([
        jnp.broadcast_to(theta_e, (2,) + theta_e.shape),
        theta_e + perturbation * delta_e,
        theta_e - perturbation * delta_e,
    ])
    return delta_l, delta_e, thetas_l, thetas_e


CROSS_TERMS = ("expert_perturbation", "learner_perturbation")


def spsa_hypergradient(key: jax.Array, evaluate: Evaluate, theta_l: jax.Array, theta_e: jax.Array, *,
                       perturbation: float, num_samples: int = 4, regularization: float,
                       cross_term: str = "expert_perturbation") -> HypergradientEstimate:
    """SPSA estimate of ∇F = ∇θl f − ∇²θlθe L [∇²θeθe L]⁻¹ ∇θe f (Lemma 2), ascent direction.

    Args:
        key: PRNG key for the Rademacher perturbations Δ.
        evaluate: batched back-end, (θl [B, d_l], θe [B, d_e]) -> LowerLevelEvaluation.
        theta_l: [d_l]; theta_e: [d_e] (the inner loop's θe(k)).
        perturbation: p(k) > 0.
        num_samples: n_spsa Hessian/gradient samples averaged (each costs two evaluations).
        regularization: λ of eq. 1; added as λI to the estimated Hessian, whose eigenvalues are then
            lifted to at least λ so that line 13's conjugate gradient is well posed.
        cross_term: how ∇²θlθe L is estimated. "expert_perturbation" (the paper, eq. 4): differences
            of ∇θl L between θe ± pΔe. "learner_perturbation": differences of ∇θe L between the two
            rows θl ± pΔl (one Δl, rank one). The latter is the TOTAL derivative d∇θe L/dθl when the
            back-end's ``evaluate`` re-collects the interaction data D(θl ± pΔl) for those two rows
            (docs/design_decisions.md, "data-dependent cross term"); with fixed data both estimate the
            same matrix.
    """
    if not isinstance(perturbation, jax.core.Tracer) and not perturbation > 0:
        raise ValueError(f"perturbation: expected a positive number, got {perturbation!r}")
    if isinstance(num_samples, bool) or int(num_samples) != num_samples or num_samples < 1:
        raise ValueError(f"num_samples: expected a positive integer, got {num_samples!r}")
    if not isinstance(regularization, jax.core.Tracer) and not regularization > 0:
        raise ValueError(f"regularization: SPSA needs λ > 0 for a positive-definite Hessian, got {regularization!r}")
    if cross_term not in CROSS_TERMS:
        raise ValueError(f"cross_term: expected one of {list(CROSS_TERMS)}, got {cross_term!r}")
    n = int(num_samples)
    delta_l, delta_e, thetas_l, thetas_e = perturbation_batch(key, theta_l, theta_e, perturbation, n)
    out = evaluate(thetas_l, thetas_e)
    f_plus_l, f_minus_l = out.upper_objective[0], out.upper_objective[1]
    f_plus_e, f_minus_e = out.upper_objective[2:2 + n], out.upper_objective[2 + n:]
    inverse_l = 1.0 / delta_l
    inverse_e = 1.0 / delta_e  # [n, d_e]

    # eq. 4 style one-sided-in-direction central differences.
    grad_l_f = (f_plus_l - f_minus_l) / (2 * perturbation) * inverse_l
    grad_e_f = jnp.mean(((f_plus_e - f_minus_e) / (2 * perturbation))[:, None] * inverse_e, axis=0)
    diff_e = (out.expert_loss_gradient[2:2 + n] - out.expert_loss_gradient[2 + n:]) / (2 * perturbation)  # [n, d_e]
    diff_l = (out.learner_loss_gradient[2:2 + n] - out.learner_loss_gradient[2 + n:]) / (2 * perturbation)  # [n, d_l]
    hessian_data = jnp.einsum("ni,nj->ij", diff_e, inverse_e) / n  # rows of eq. 4, averaged
    if cross_term == "expert_perturbation":
        cross = jnp.einsum("ni,nj->ij", diff_l, inverse_e) / n  # [d_l, d_e]
    else:
        diff_e_by_l = (out.expert_loss_gradient[0] - out.expert_loss_gradient[1]) / (2 * perturbation)  # [d_e]
        cross = inverse_l[:, None] * diff_e_by_l[None, :]  # [d_l, d_e]
    identity = jnp.eye(theta_e.shape[0], dtype=theta_e.dtype)
    hessian = lift_to_positive_definite(hessian_data + regularization * identity, regularization)
    solve = conjugate_gradient(hessian, grad_e_f)  # line 13
    hypergradient = grad_l_f - cross @ solve  # line 14
    return HypergradientEstimate(hypergradient, grad_l_f, grad_e_f, hessian, cross)
