"""Hypergradients (Lemma 2): exact vs finite differences of F, SPSA vs exact, CG, schedules."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsiirl.algorithms import schedules
from gsiirl.algorithms.gsiirl import batched_evaluation
from gsiirl.algorithms.interaction import SimulatedExpert
from gsiirl.algorithms.lower_level import LowerLevelProblem
from gsiirl.games.random import random_tabular_game
from gsiirl.hypergradients import conjugate_gradient, lift_to_positive_definite, spsa_hypergradient
from gsiirl.hypergradients.exact import exact_hypergradient
from gsiirl.hypergradients.finite_difference import finite_difference_hypergradient, solve_lower_level
from gsiirl.rewards import LinearReward


def _setup(model):
    game = random_tabular_game(0, num_states=6, num_learner_actions=2, num_expert_actions=2, horizon=4)
    rng = np.random.default_rng(0)
    problem = LowerLevelProblem(game, LinearReward(rng.normal(size=game.joint_shape + (4,))),
                                LinearReward(rng.normal(size=game.joint_shape + (5,))), equilibrium=model,
                                regularization=0.1, iterations=100)
    expert = SimulatedExpert(game, equilibrium=model, iterations=100)
    theta_l = jnp.array([0.15, 0.15, 0.15, 0.15])
    theta_e = solve_lower_level(problem, expert, theta_l, jnp.zeros(5), steps=30)
    assert float(jnp.linalg.norm(theta_e)) < 0.9  # interior optimum: the implicit function theorem applies
    return problem, expert, theta_l, theta_e


def _cosine(a, b):
    return float(jnp.dot(a, b) / (jnp.linalg.norm(a) * jnp.linalg.norm(b)))


@pytest.fixture(scope="module")
def soft_nash_setup():
    return _setup("soft_nash")


@pytest.mark.parametrize("model", ["joint_soft", "soft_nash"])
def test_exact_hypergradient_matches_finite_differences_of_F(model, soft_nash_setup):
    problem, expert, theta_l, theta_e = soft_nash_setup if model == "soft_nash" else _setup(model)
    exact = exact_hypergradient(problem, expert, theta_l, theta_e).hypergradient
    finite = finite_difference_hypergradient(problem, expert, theta_l, theta_e, step=1e-5,
                                             steps=30).hypergradient
    relative = float(jnp.linalg.norm(exact - finite) / jnp.linalg.norm(finite))
    assert relative < 1e-4
    assert float(jnp.linalg.norm(finite)) > 1e-2


def test_mean_of_spsa_draws_points_like_exact(soft_nash_setup):
    problem, expert, theta_l, theta_e = soft_nash_setup
    data = expert.expected_data(problem.learner_reward_table(theta_l))
    exact = exact_hypergradient(problem, expert, theta_l, theta_e).hypergradient

    def draw(key):
        def evaluate(thetas_l, thetas_e):
            return batched_evaluation(problem, "autodiff", thetas_l, thetas_e, data)

        return spsa_hypergradient(key, evaluate, theta_l, theta_e, perturbation=0.01, num_samples=4,
                                  regularization=problem.regularization).hypergradient

    draws = jax.jit(jax.vmap(draw))(jax.random.split(jax.random.PRNGKey(1), 400))
    assert _cosine(draws.mean(axis=0), exact) > 0.9
    single = np.mean([_cosine(d, exact) for d in draws[:50]])
    assert single < _cosine(draws.mean(axis=0), exact)  # averaging is what makes SPSA accurate


@pytest.mark.parametrize("lower_gradient", ["lemma1", "autodiff"])
def test_data_dependent_cross_term_points_like_the_exact_hypergradient_of_F(lower_gradient):
    """joint_soft: the paper's fixed-data cross term misses D(θl)'s dependence on θl (measured mean-of-400
    cosine 0.35); re-collecting D at θl ± pΔl gives the total derivative (measured 0.92)."""
    from gsiirl.algorithms.gsiirl import _spsa_step

    problem, expert, theta_l, theta_e = _setup("joint_soft")
    data = expert.expected_data(problem.learner_reward_table(theta_l))
    exact = exact_hypergradient(problem, expert, theta_l, theta_e).hypergradient

    def mean_direction(data_expert):
        draw = lambda k: _spsa_step(problem, lower_gradient, 4, k, theta_l, theta_e, data, 0.01, False,
                                    data_expert, "expected", 1).hypergradient
        return jax.jit(jax.vmap(draw))(jax.random.split(jax.random.PRNGKey(1), 400)).mean(axis=0)

    dependent, fixed = _cosine(mean_direction(expert), exact), _cosine(mean_direction(None), exact)
    assert dependent > 0.85
    assert dependent > fixed + 0.3


@pytest.mark.parametrize("cross_term", ["expert_perturbation", "learner_perturbation"])
def test_spsa_recovers_the_hessian_of_a_quadratic(cross_term):
    """On a quadratic lower level with linear f, SPSA's averaged terms are unbiased and the formula exact."""
    rng = np.random.default_rng(0)
    d_l, d_e = 3, 4
    a = rng.normal(size=(d_e, d_e))
    hessian = a @ a.T + np.eye(d_e)
    cross = rng.normal(size=(d_l, d_e))
    grad_l_f, grad_e_f = rng.normal(size=d_l), rng.normal(size=d_e)

    def evaluate(thetas_l, thetas_e):
        from gsiirl.hypergradients.types import LowerLevelEvaluation

        upper = thetas_l @ grad_l_f + thetas_e @ grad_e_f
        expert_grad = thetas_e @ hessian.T + thetas_l @ cross - 0.1 * thetas_e  # λθe excluded
        learner_grad = thetas_e @ cross.T
        return LowerLevelEvaluation(upper, expert_grad, learner_grad)

    draws = jax.vmap(lambda k: spsa_hypergradient(k, evaluate, jnp.zeros(d_l), jnp.zeros(d_e), perturbation=0.1,
                                                  num_samples=64, regularization=0.1, cross_term=cross_term))(
        jax.random.split(jax.random.PRNGKey(0), 200))
    expected = grad_l_f - cross @ np.linalg.solve(hessian, grad_e_f)
    np.testing.assert_allclose(np.asarray(draws.learner_objective_gradient.mean(0)), grad_l_f, atol=0.25)
    np.testing.assert_allclose(np.asarray(draws.expert_hessian.mean(0)), hessian, atol=0.3 * np.abs(hessian).max())
    np.testing.assert_allclose(np.asarray(draws.cross_hessian.mean(0)), cross, atol=0.3 * np.abs(cross).max())
    assert _cosine(draws.hypergradient.mean(0), jnp.asarray(expected)) > 0.95


def test_conjugate_gradient_matches_a_dense_solve():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(12, 12))
    matrix = jnp.asarray(a @ a.T + 0.5 * np.eye(12))
    rhs = jnp.asarray(rng.normal(size=12))
    np.testing.assert_allclose(np.asarray(conjugate_gradient(matrix, rhs)), np.linalg.solve(matrix, rhs), rtol=1e-7)
    np.testing.assert_allclose(np.asarray(conjugate_gradient(lambda v: matrix @ v, rhs)),
                               np.linalg.solve(matrix, rhs), rtol=1e-7)


def test_positive_definite_lift():
    matrix = jnp.array([[1.0, 3.0], [0.0, -2.0]])
    lifted = lift_to_positive_definite(matrix, 0.1)
    np.testing.assert_allclose(np.asarray(lifted), np.asarray(lifted.T))
    assert float(jnp.linalg.eigvalsh(lifted).min()) >= 0.1 - 1e-12
    spd = jnp.array([[2.0, 0.5], [0.5, 1.0]])
    np.testing.assert_allclose(np.asarray(lift_to_positive_definite(spd, 0.1)), np.asarray(spd), atol=1e-12)


def test_schedules_follow_theorem_2():
    assert [schedules.perturbation_size(k) for k in (1, 2, 4)] == [1.0, 0.5, 0.25]
    assert schedules.outer_step_size(50, 2.0) == pytest.approx(1 / (2 * math.sqrt(50)))
    assert [schedules.inner_steps(k) for k in (0, 14, 15, 16, 80, 81, 255, 256)] == [
        math.ceil((k + 1) ** 0.25 / 2) for k in (0, 14, 15, 16, 80, 81, 255, 256)]
    assert schedules.inner_steps(0) == 1 and schedules.inner_steps(15) == 1 and schedules.inner_steps(16) == 2
    with pytest.raises(ValueError):
        schedules.outer_step_size(0)
    a_k, c_k = schedules.spall_gains(4, a=0.2, c=0.3)
    assert a_k == pytest.approx(0.2 / (10 + 4 + 1) ** 0.602) and c_k == pytest.approx(0.3 / 5 ** 0.101)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_an_eager_conjugate_gradient_is_compiled_once_per_shape_with_unchanged_numbers(dtype, compilations):
    # The single-seed sample-based outer loop (MPE's seed_batch=1, SampleBasedGSIIRL.run on one's own
    # simulator) computes the SPSA estimate eagerly once per outer iteration. jax's cg builds a new while
    # loop at every call, so every call compiled it again (≈ 0.24 s on a 2-core machine, against an
    # outer iteration of ≈ 0.15-2 s). A later call of the same shape must compile nothing, and give the
    # numbers of the eager jax.scipy cg bit for bit (the experiments' numbers must not change).
    from jax.scipy.sparse.linalg import cg

    rng = np.random.default_rng(5)

    def problem(size):
        matrix = lift_to_positive_definite(jnp.asarray(rng.normal(size=(size, size)), dtype) + 0.5 * jnp.eye(size,
                                                                                                           dtype=dtype), 0.5)
        return matrix, jnp.asarray(rng.normal(size=size), dtype)

    conjugate_gradient(*problem(4))  # the first call of a shape compiles
    for size in (4, 4, 4, 1, 7):
        matrix, rhs = problem(size)
        reference = cg(lambda v: matrix @ v, rhs, tol=1e-10, atol=0.0, maxiter=10 * size)[0]
        with compilations() as compiled:
            solution = conjugate_gradient(matrix, rhs)
        if size == 4:
            assert compiled == []
        np.testing.assert_array_equal(np.asarray(solution), np.asarray(reference))
        assert solution.dtype == dtype
    # inside a trace the solve is traced as before (jit, vmap and grad see jax's cg)
    matrix, rhs = problem(3)
    np.testing.assert_allclose(jax.jit(conjugate_gradient)(matrix, rhs), np.linalg.solve(matrix, rhs),
                               rtol=1e-4 if dtype == jnp.float32 else 1e-9)
