"""Hypergradient estimators for the outer loop (Lemma 2): SPSA, exact, finite differences."""

from gsiirl.hypergradients.cg import conjugate_gradient, lift_to_positive_definite
from gsiirl.hypergradients.spsa import SPSAEstimate, spsa_hypergradient
from gsiirl.hypergradients.types import HypergradientEstimate, LowerLevelEvaluation

__all__ = ["HypergradientEstimate", "LowerLevelEvaluation", "SPSAEstimate", "conjugate_gradient",
           "lift_to_positive_definite", "spsa_hypergradient"]
