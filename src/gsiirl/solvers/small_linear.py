"""Many tiny dense linear systems at once (the per-state Newton systems of the stage solver).

``solve_small(matrices, rhs)`` solves ``matrices[..., :, :] x = rhs[..., :]`` for every leading index by
Gauss–Jordan elimination with partial pivoting, unrolled over the (static, small) size n and
vectorised over the batch. Why not ``jnp.linalg.solve``: on CPU it calls LAPACK's getrf/getrs once
per matrix, a loop of ~µs calls, which for the stage solver's 256 × (10 × 10) systems costs more than
the arithmetic; the unrolled elimination is a few fused array ops per column. Measured on this
project's 2-core machine (session 12): [256, 10, 10] solve 0.31 ms → 0.16 ms, one 8-node security
``soft_nash`` solve 28 ms → 23 ms (``python benchmarks/bench_core.py`` prints the ratio).

Derivatives (forward and reverse mode, also under vmap) come from ``jax.lax.custom_linear_solve``:
``dx = A⁻¹(db − dA x)`` and the transposed solve for the adjoint, not from differentiating the
elimination (whose pivoting makes that slower and no more exact). A singular matrix gives non-finite
entries, as LAPACK does; callers that can meet one must check (the stage solver's Newton step rejects
non-finite steps).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

LARGEST_UNROLLED_SIZE = 32  # beyond this the unrolled program grows large; use jnp.linalg.solve


def _gauss_jordan(matrices: jax.Array, rhs: jax.Array) -> jax.Array:
    """matrices [..., n, n], rhs [..., n] -> x [..., n] (partial pivoting, unrolled over the n columns)."""
    n = matrices.shape[-1]
    augmented = jnp.concatenate([matrices, rhs[..., None]], axis=-1)  # [..., n, n + 1]
    rows = jnp.arange(n)
    for column in range(n):
        # pivot: the largest |entry| of this column among the rows not yet used
        candidates = jnp.where(rows >= column, jnp.abs(augmented[..., :, column]), -1.0)
        pivot_row = jnp.argmax(candidates, axis=-1)  # [...]
        current = augmented[..., column, :]
        pivot = jnp.take_along_axis(augmented, pivot_row[..., None, None], axis=-2)[..., 0, :]  # [..., n + 1]
        # swap the pivot row into place
        augmented = jnp.where((rows == pivot_row[..., None])[..., None], current[..., None, :], augmented)
        augmented = augmented.at[..., column, :].set(pivot)
        # eliminate this column from every other row (Gauss–Jordan: the left block becomes diagonal)
        factors = jnp.where(rows == column, 0.0, augmented[..., :, column] / pivot[..., column, None])
        augmented = augmented - factors[..., :, None] * pivot[..., None, :]
    return augmented[..., :, n] / jnp.diagonal(augmented[..., :, :n], axis1=-2, axis2=-1)


def solve_small(matrices: jax.Array, rhs: jax.Array) -> jax.Array:
    """Solve ``matrices @ x = rhs`` batched: matrices [..., n, n], rhs [..., n] -> x [..., n].

    Same batch shape on both; differentiable in both arguments (forward and reverse mode).
    """
    if matrices.ndim < 2 or matrices.shape[-1] != matrices.shape[-2]:
        raise ValueError(f"matrices: expected shape [..., n, n], got {matrices.shape}")
    if rhs.shape != matrices.shape[:-1]:
        raise ValueError(f"rhs: expected shape {matrices.shape[:-1]} (matrices' shape without the last axis), "
                         f"got {rhs.shape}")
    if matrices.shape[-1] > LARGEST_UNROLLED_SIZE:
        return jnp.linalg.solve(matrices, rhs[..., None])[..., 0]
    transposed = jnp.swapaxes(matrices, -1, -2)
    return jax.lax.custom_linear_solve(
        lambda x: jnp.einsum("...ij,...j->...i", matrices, x),
        rhs,
        solve=lambda _, b: _gauss_jordan(matrices, b),
        transpose_solve=lambda _, b: _gauss_jordan(transposed, b),
    )
