"""solve_small (batched Gauss–Jordan with partial pivoting) against NumPy/LAPACK and finite differences."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsiirl.solvers.small_linear import LARGEST_UNROLLED_SIZE, solve_small


def _system(seed, batch, n):
    rng = np.random.default_rng(seed)
    matrices = rng.normal(size=batch + (n, n)) + 0.5 * np.eye(n)
    rhs = rng.normal(size=batch + (n,))
    return matrices, rhs


@pytest.mark.parametrize("batch, n", [((), 1), ((7,), 3), ((4, 5), 10), ((256,), 10)])
def test_matches_numpy_solve(batch, n):
    matrices, rhs = _system(n, batch, n)
    expected = np.linalg.solve(matrices, rhs[..., None])[..., 0]
    got = np.asarray(solve_small(jnp.asarray(matrices, jnp.float32), jnp.asarray(rhs, jnp.float32)))
    # float32 elimination vs float64 LAPACK: error bounded by cond(A) · eps32
    scale = np.linalg.cond(matrices).reshape(batch + (1,)) * np.abs(expected).max(axis=-1, keepdims=True)
    assert np.all(np.abs(got - expected) <= 1e-5 * scale + 1e-6)


def test_pivoting_handles_a_zero_and_a_tiny_leading_entry():
    # a zero on the diagonal: elimination without row exchanges divides by zero
    permutation = jnp.asarray([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0], [3.0, 0.0, 0.0]])
    np.testing.assert_allclose(solve_small(permutation, jnp.asarray([1.0, 4.0, 9.0])), [3.0, 1.0, 2.0], rtol=1e-6)
    # a tiny leading pivot: without pivoting float32 loses the answer completely (x ≈ (1, 1))
    tiny = jnp.asarray([[1e-8, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(solve_small(tiny, jnp.asarray([1.0, 2.0])), [1.0, 1.0], rtol=1e-6)


def test_reverse_mode_gradient_matches_lapack_and_finite_differences():
    matrices, rhs = _system(3, (5,), 4)
    matrices, rhs = jnp.asarray(matrices, jnp.float32), jnp.asarray(rhs, jnp.float32)
    weights = jnp.arange(20.0).reshape(5, 4) / 10.0

    def loss(solver, a, b):
        return jnp.sum(weights * jnp.sin(solver(a, b)))

    def lapack(a, b):
        return jnp.linalg.solve(a, b[..., None])[..., 0]

    ours = jax.grad(lambda a, b: loss(solve_small, a, b), argnums=(0, 1))(matrices, rhs)
    reference = jax.grad(lambda a, b: loss(lapack, a, b), argnums=(0, 1))(matrices, rhs)
    for got, want in zip(ours, reference):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-4)
    # one entry by central differences in float64 NumPy
    a64, b64 = np.asarray(matrices, np.float64), np.asarray(rhs, np.float64)
    w64 = np.asarray(weights, np.float64)

    def loss64(a):
        return np.sum(w64 * np.sin(np.linalg.solve(a, b64[..., None])[..., 0]))

    step = np.zeros_like(a64)
    step[2, 1, 3] = 1e-6
    numeric = (loss64(a64 + step) - loss64(a64 - step)) / 2e-6
    np.testing.assert_allclose(float(ours[0][2, 1, 3]), numeric, rtol=1e-3, atol=1e-4)


def test_forward_mode_and_vmap():
    matrices, rhs = _system(4, (3,), 5)
    matrices, rhs = jnp.asarray(matrices, jnp.float32), jnp.asarray(rhs, jnp.float32)
    direction_a = jnp.asarray(np.random.default_rng(0).normal(size=matrices.shape), jnp.float32)
    direction_b = jnp.asarray(np.random.default_rng(1).normal(size=rhs.shape), jnp.float32)
    x, tangent = jax.jvp(solve_small, (matrices, rhs), (direction_a, direction_b))
    # dx = A⁻¹ (db − dA x)
    expected = np.linalg.solve(np.asarray(matrices, np.float64),
                               (np.asarray(direction_b) - np.einsum("sij,sj->si", direction_a, x))[..., None])[..., 0]
    np.testing.assert_allclose(tangent, expected, rtol=1e-3, atol=1e-4)
    mapped = jax.vmap(solve_small)(matrices, rhs)
    np.testing.assert_allclose(mapped, x, rtol=1e-6, atol=1e-6)


def test_singular_matrix_gives_non_finite_values_and_large_sizes_fall_back():
    singular = jnp.asarray([[1.0, 2.0], [2.0, 4.0]])
    assert not np.all(np.isfinite(np.asarray(solve_small(singular, jnp.asarray([1.0, 1.0])))))
    n = LARGEST_UNROLLED_SIZE + 1
    matrices, rhs = _system(5, (2,), n)
    np.testing.assert_allclose(solve_small(jnp.asarray(matrices), jnp.asarray(rhs)),
                               np.linalg.solve(matrices, rhs[..., None])[..., 0], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("matrices_shape, rhs_shape, field", [((3, 4), (3,), "matrices"), ((2, 3, 3), (3,), "rhs")])
def test_bad_shapes_name_the_argument(matrices_shape, rhs_shape, field):
    with pytest.raises(ValueError, match=field):
        solve_small(jnp.zeros(matrices_shape), jnp.zeros(rhs_shape))
