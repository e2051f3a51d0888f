"""Shared types of the hypergradient estimators."""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax


class LowerLevelEvaluation(NamedTuple):
    """What a back-end returns for a batch of B parameter pairs (the SPSA contract).

    upper_objective: [B] f(θl, θe), the learner's true return under π^{θl,θe};
    expert_loss_gradient: [B, d_e] data part of ∇θe L (Lemma 1, without λθe);
    learner_loss_gradient: [B, d_l] ∇θl L (Lemma 3).
    """

    upper_objective: jax.Array
    expert_loss_gradient: jax.Array
    learner_loss_gradient: jax.Array


Evaluate = Callable[[jax.Array, jax.Array], LowerLevelEvaluation]


class HypergradientEstimate(NamedTuple):
    """hypergradient [d_l] (ascent direction of F(θl) = f(θl, θe*(θl))), and its parts:
    learner_objective_gradient ∇θl f [d_l], expert_objective_gradient ∇θe f [d_e],
    expert_hessian ∇²θeθe L [d_e, d_e], cross_hessian ∇²θlθe L [d_l, d_e] (zeros where not formed)."""

    hypergradient: jax.Array
    learner_objective_gradient: jax.Array
    expert_objective_gradient: jax.Array
    expert_hessian: jax.Array
    cross_hessian: jax.Array
