"""Finite-difference hypergradient: central differences of the total F(θl) = f(θl, θe*(θl)).

Ground truth for tests and small θ only (DESIGN §4): every coordinate costs two full lower-level
solves. The lower level is solved by damped Newton steps with an autodiff Hessian (small d_e), with
the data's dependence on θl kept as in :mod:`gsiirl.hypergradients.exact`.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

from gsiirl.algorithms.lower_level import LowerLevelProblem
from gsiirl.hypergradients.exact import data_dependent_loss
from gsiirl.hypergradients.types import HypergradientEstimate
from gsiirl.rewards import project_to_ball


def solve_lower_level(problem: LowerLevelProblem, expert, theta_l, theta_e_start, *, steps: int = 25,
                      radius: float = 1.0):
    """θe*(θl) [d_e] by projected Newton steps on L̃(θl, ·) from ``theta_e_start``."""
    loss = data_dependent_loss(problem, expert)
    gradient = jax.grad(loss, argnums=1)
    hessian = jax.hessian(loss, argnums=1)

    def newton(theta, _):
        matrix = hessian(theta_l, theta)
        matrix = 0.5 * (matrix + matrix.T)
        floor = jnp.maximum(problem.regularization, 1e-8)
        eigenvalues, eigenvectors = jnp.linalg.eigh(matrix)
        inverse = (eigenvectors / jnp.maximum(eigenvalues, floor)) @ eigenvectors.T
        return project_to_ball(theta - inverse @ gradient(theta_l, theta), radius), None

    theta, _ = jax.lax.scan(newton, theta_e_start, None, length=steps)
    return theta


@partial(jax.jit, static_argnames=("steps",))
def finite_difference_hypergradient(problem: LowerLevelProblem, expert, theta_l, theta_e, *,
                                    step: float = 1e-4, steps: int = 25,
                                    radius: float = 1.0) -> HypergradientEstimate:
    """Central differences of F along every coordinate of θl [d_l]; θe [d_e] is the warm start."""

    def total_objective(tl):
        theta_star = solve_lower_level(problem, expert, tl, theta_e, steps=steps, radius=radius)
        return problem.upper_objective(tl, theta_star)

    directions = jnp.eye(theta_l.shape[0], dtype=theta_l.dtype) * step
    plus = jax.vmap(total_objective)(theta_l + directions)
    minus = jax.vmap(total_objective)(theta_l - directions)
    hypergradient = (plus - minus) / (2 * step)
    zeros_e = jnp.zeros_like(theta_e)
    return HypergradientEstimate(hypergradient, hypergradient, zeros_e,
                                 jnp.zeros((theta_e.shape[0],) * 2, theta_e.dtype),
                                 jnp.zeros((theta_l.shape[0], theta_e.shape[0]), theta_e.dtype))
