"""Exact hypergradient by implicit differentiation (DESIGN §4, ``exact``; tabular games only).

``F(θl) = f(θl, θe*(θl))`` with ``θe*(θl) = argmin_θe L̃(θl, θe)`` and
``L̃(θl, θe) = L(θl, θe; D(θl))`` where the data's dependence on θl (the learner's policy generates
them) is kept: D(θl) is the exact per-stage occupancy of the simulated interaction. By the implicit
function theorem (Lemma 2): ``∇F = ∇θl f − ∇²θlθe L̃ [∇²θeθe L̃]⁻¹ ∇θe f``. The inverse-Hessian-vector
product is solved by conjugate gradient on Hessian-vector products (no explicit Hessian); every other
derivative comes from automatic differentiation through the equilibrium solver.
"""

from __future__ import annotations


import jax
import jax.numpy as jnp

from gsiirl.algorithms.lower_level import LowerLevelProblem
from gsiirl.hypergradients.cg import conjugate_gradient
from gsiirl.hypergradients.types import HypergradientEstimate


def data_dependent_loss(problem: LowerLevelProblem, expert):
    """L̃(θl, θe) = L(θl, θe; D(θl)) with ``expert.expected_data(learner_reward_table) -> [T, S, A_l, A_e]``."""

    def loss(theta_l, theta_e):
        data = expert.expected_data(problem.learner_reward_table(theta_l))
        return problem.loss(theta_l, theta_e, data)

    return loss


@jax.jit
def exact_hypergradient(problem: LowerLevelProblem, expert, theta_l: jax.Array,
                        theta_e: jax.Array) -> HypergradientEstimate:
    """Implicit-differentiation hypergradient at (θl [d_l], θe [d_e]); ascent direction of F.

    ``expert`` is a pytree (e.g. :class:`gsiirl.SimulatedExpert`) whose ``expected_data`` maps the
    learner's reward table [S, A_l, A_e] to the exact per-stage data occupancy [T, S, A_l, A_e].
    """
    loss = data_dependent_loss(problem, expert)
    grad_l_f, grad_e_f = jax.grad(problem.upper_objective, argnums=(0, 1))(theta_l, theta_e)
    grad_e_loss = jax.grad(loss, argnums=1)

    def hessian_vector_product(vector):
        return jax.jvp(lambda te: grad_e_loss(theta_l, te), (theta_e,), (vector,))[1]

    solve = conjugate_gradient(hessian_vector_product, grad_e_f)
    cross_times_solve = jax.grad(lambda tl: jnp.vdot(grad_e_loss(tl, theta_e), solve))(theta_l)
    hypergradient = grad_l_f - cross_times_solve
    empty_hessian = jnp.zeros((theta_e.shape[0], theta_e.shape[0]), theta_e.dtype)
    empty_cross = jnp.zeros((theta_l.shape[0], theta_e.shape[0]), theta_e.dtype)
    return HypergradientEstimate(hypergradient, grad_l_f, grad_e_f, empty_hessian, empty_cross)
