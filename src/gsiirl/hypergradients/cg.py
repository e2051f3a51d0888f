"""Conjugate gradient for the inverse-Hessian-vector product of Algorithm 1, line 13."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.scipy.sparse.linalg import cg

try:
    from jax.extend.core import jaxpr_as_fun
except ImportError:  # an older jax (the lower bound is 0.5) has it in jax.core only
    from jax.core import jaxpr_as_fun


def conjugate_gradient(matvec, rhs: jax.Array, *, tol: float = 1e-10, maxiter: int | None = None) -> jax.Array:
    """Solve ``H u = rhs`` for a symmetric positive-definite operator given as ``matvec`` (or a matrix).

    Equivalent to line 13: ``u = argmin_u ½ uᵀHu − uᵀ rhs``. rhs: [d] -> u: [d].

    Called eagerly on a matrix (the single-seed sample-based outer loop does, once per outer iteration),
    the solve runs a program traced once per shape and dtype: jax's ``cg`` builds a new while loop at
    every call, which JAX then compiled again at every call (≈ 0.24 s each on a 2-core machine). The
    program is evaluated operation by operation as before, so the numbers are the eager ``cg``'s, bit
    for bit (jitting the whole solve instead changes the last bits of some solutions).
    """
    maxiter = maxiter if maxiter is not None else 10 * rhs.shape[0]
    if isinstance(matvec, jax.Array) and not any(isinstance(x, jax.core.Tracer) for x in (matvec, rhs)):
        program = _eager_matrix_solve(_signature(matvec), _signature(rhs), float(tol), int(maxiter))
        return program(matvec, rhs)[0]
    return _solve(matvec, rhs, tol, maxiter)


def _solve(matvec, rhs, tol, maxiter):
    operator = (lambda v: matvec @ v) if isinstance(matvec, jax.Array) else matvec
    solution, _ = cg(operator, rhs, tol=tol, atol=0.0, maxiter=maxiter)
    return solution


def _signature(array: jax.Array) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct(array.shape, array.dtype, weak_type=array.weak_type)


@functools.lru_cache(maxsize=64)
def _eager_matrix_solve(matrix: jax.ShapeDtypeStruct, rhs: jax.ShapeDtypeStruct, tol: float, maxiter: int):
    """``(matrix, rhs) -> [solution]``: the matrix solve's traced program, run primitive by primitive; its
    while loop is the same object at every call, so JAX compiles it once."""
    return jaxpr_as_fun(jax.make_jaxpr(lambda m, b: _solve(m, b, tol, maxiter))(matrix, rhs))


def lift_to_positive_definite(matrix: jax.Array, floor: float) -> jax.Array:
    """Symmetrise a [d, d] matrix and raise its eigenvalues to at least ``floor`` (Spall's 2SPSA fix)."""
    symmetric = 0.5 * (matrix + matrix.T)
    eigenvalues, eigenvectors = jnp.linalg.eigh(symmetric)
    return (eigenvectors * jnp.maximum(eigenvalues, floor)) @ eigenvectors.T
