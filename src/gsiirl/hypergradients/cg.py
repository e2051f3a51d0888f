"""Conjugate gradient for the inverse-Hessian-vector product of Algorithm 1, line 13."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.sparse.linalg import cg


def conjugate_gradient(matvec, rhs: jax.Array, *, tol: float = 1e-10, maxiter: int | None = None) -> jax.Array:
    """Solve ``H u = rhs`` for a symmetric positive-definite operator given as ``matvec`` (or a matrix).

    Equivalent to line 13: ``u = argmin_u ½ uᵀHu − uᵀ rhs``. rhs: [d] -> u: [d].
    """
    operator = (lambda v: matvec @ v) if isinstance(matvec, jax.Array) else matvec
    size = rhs.shape[0]
    solution, _ = cg(operator, rhs, tol=tol, atol=0.0, maxiter=maxiter if maxiter is not None else 10 * size)
    return solution


def lift_to_positive_definite(matrix: jax.Array, floor: float) -> jax.Array:
    """Symmetrise a [d, d] matrix and raise its eigenvalues to at least ``floor`` (Spall's 2SPSA fix)."""
    symmetric = 0.5 * (matrix + matrix.T)
    eigenvalues, eigenvectors = jnp.linalg.eigh(symmetric)
    return (eigenvectors * jnp.maximum(eigenvalues, floor)) @ eigenvectors.T
