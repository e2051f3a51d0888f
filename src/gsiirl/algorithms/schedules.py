"""Step-size and perturbation schedules; defaults are Theorem 2's, all overridable (DESIGN §4)."""

from __future__ import annotations

import math


def perturbation_size(k: int, scale: float = 1.0) -> float:
    """p(k) = scale / k for the k-th outer iteration counted from 1 (k = 0 is treated as 1)."""
    return scale / max(1, k)


def outer_step_size(num_outer_iterations: int, lipschitz: float = 1.0) -> float:
    """α_k = 1 / (L_f √K) (constant over k)."""
    if num_outer_iterations < 1 or not lipschitz > 0:
        raise ValueError("outer_step_size: needs K >= 1 and L_f > 0")
    return 1.0 / (lipschitz * math.sqrt(num_outer_iterations))


def inner_steps(k: int) -> int:
    """t_k = ⌈(k+1)^{1/4} / 2⌉ inner steps at outer iteration k (k from 0)."""
    return max(1, math.ceil((k + 1) ** 0.25 / 2))


def spall_gains(k: int, a: float = 0.1, c: float = 0.1, big_a: float = 10.0, alpha: float = 0.602,
                gamma: float = 0.101) -> tuple[float, float]:
    """Spall's standard SPSA gains (a_k, c_k) = (a/(A+k+1)^α, c/(k+1)^γ): an alternative schedule."""
    return a / (big_a + k + 1) ** alpha, c / (k + 1) ** gamma
