"""Parametric joint reward tables ``r^θ : [d] -> [S, A_l, A_e]``.

A reward model is anything with ``num_params`` and a pure ``table(theta)``; everything else
(feature expectations μ = E[Σ_t γ^t ∇_θ r^θ], Hessians) is obtained by automatic differentiation of
``table``, so linear and neural models share one code path.
"""

from __future__ import annotations

from typing import Protocol

import jax
import jax.numpy as jnp
import numpy as np

from gsiirl.validation import is_finite_real_scalar


class PytreeModel:
    """Mixin making a reward model a JAX pytree: ``_array_fields`` are leaves, ``_static_fields``
    (hashable) are compile-time constants. Compiled functions then take the model as an ordinary
    argument, so models of the same shape share one compilation (e.g. across seeds)."""

    _array_fields: tuple[str, ...] = ()
    _static_fields: tuple[str, ...] = ()

    def tree_flatten(self):
        return (tuple(getattr(self, name) for name in self._array_fields),
                tuple(getattr(self, name) for name in self._static_fields))

    @classmethod
    def tree_unflatten(cls, static, children):
        model = object.__new__(cls)
        for name, value in zip(cls._array_fields, children):
            setattr(model, name, value)
        for name, value in zip(cls._static_fields, static):
            setattr(model, name, value)
        return model


class RewardModel(Protocol):
    """Protocol: a flat parameter vector θ [num_params] mapped to a joint reward table [S, A_l, A_e]."""

    num_params: int

    def table(self, theta: jax.Array) -> jax.Array: ...

    def init(self, key: jax.Array, radius: float = 1.0) -> jax.Array: ...


def random_in_ball(key: jax.Array, num_params: int, radius: float) -> jax.Array:
    """A random direction scaled to a random radius in [0.5, 1] * radius."""
    direction_key, radius_key = jax.random.split(key)
    direction = jax.random.normal(direction_key, (num_params,))
    direction = direction / jnp.maximum(jnp.linalg.norm(direction), 1e-12)
    return direction * radius * jax.random.uniform(radius_key, (), minval=0.5, maxval=1.0)


def _model_array(name: str, value, layout: str) -> np.ndarray:
    """``value`` as a finite real array of 4 dimensions, or ValueError naming ``name`` (the model's field):
    a NaN or inf here would otherwise surface as a NaN ``learner_reward`` / ``expert_reward`` table."""
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name}: expected a real-valued numeric array {layout}, got dtype {array.dtype}")
    if array.ndim != 4:
        raise ValueError(f"{name}: expected shape {layout}, got {array.shape}")
    with np.errstate(over="ignore"):  # an overflow to inf is reported below, by name
        converted = np.asarray(array, dtype=np.dtype(jnp.result_type(float)))
    if not np.all(np.isfinite(converted)):
        raise ValueError(f"{name}: contains NaN or infinite values (or values beyond the range of "
                         f"{converted.dtype.name})")
    return converted


def check_scale(scale) -> float:
    """``scale`` as a float, or ValueError naming it (NaN, inf or a non-number)."""
    if not is_finite_real_scalar(scale):
        raise ValueError(f"scale: expected a finite number, got {scale!r}")
    return float(scale)


def one_hot_features(joint_shape: tuple[int, int, int]) -> np.ndarray:
    """One-hot features over the table: [S, A_l, A_e, S*A_l*A_e] (the default linear model)."""
    size = int(np.prod(joint_shape))
    return np.eye(size, dtype=np.float32).reshape(tuple(joint_shape) + (size,))


def check_hidden(hidden) -> int:
    """The hidden width of an MLP reward as an int, or ValueError naming ``hidden``."""
    if isinstance(hidden, bool) or not isinstance(hidden, (int, np.integer)) or hidden < 1:
        raise ValueError(f"hidden: expected a positive integer, got {hidden!r}")
    return int(hidden)


def mlp_forward(theta: jax.Array, inputs: jax.Array, hidden: int, num_inputs: int) -> jax.Array:
    """``w2 · tanh(W1 x + b1) + b2`` over the last axis of inputs [..., num_inputs] -> [...].

    θ [hidden·(num_inputs + 2) + 1] is the flat concatenation of (W1 [hidden, num_inputs], b1 [hidden],
    w2 [hidden], b2 []).
    """
    h, n = hidden, num_inputs
    weights1 = theta[: h * n].reshape(h, n)
    bias1 = theta[h * n : h * n + h]
    weights2 = theta[h * n + h : h * n + 2 * h]
    bias2 = theta[-1]
    activations = jnp.tanh(jnp.tensordot(inputs, weights1, axes=([-1], [1])) + bias1)
    return jnp.tensordot(activations, weights2, axes=([-1], [0])) + bias2


@jax.tree_util.register_pytree_node_class
class LinearReward(PytreeModel):
    _array_fields = ("features",)
    _static_fields = ("scale", "num_params", "joint_shape")
    """``r^θ(s, a) = φ(s, a) · θ`` with user features φ [S, A_l, A_e, d] (paper §5, linear case).

    Args:
        features: [S, A_l, A_e, d] array.
        scale: optional constant multiplier (reward scale relative to the temperature, DESIGN §2).
    """

    def __init__(self, features, scale: float = 1.0) -> None:
        array = _model_array("features", features, "[S, A_l, A_e, d]")
        self.features = jnp.asarray(array, dtype=jnp.result_type(float))
        self.scale = check_scale(scale)
        if array.shape[-1] < 1:  # no parameter: nothing could be learned
            raise ValueError(f"features: expected at least one feature (d >= 1), got shape {array.shape}")
        self.num_params = int(array.shape[-1])
        self.joint_shape = tuple(int(n) for n in array.shape[:3])

    def table(self, theta: jax.Array) -> jax.Array:
        """θ [d] -> reward table [S, A_l, A_e]."""
        return self.scale * jnp.tensordot(self.features, theta, axes=([3], [0]))

    def init(self, key: jax.Array, radius: float = 1.0) -> jax.Array:
        return random_in_ball(key, self.num_params, radius)


@jax.tree_util.register_pytree_node_class
class MLPReward(PytreeModel):
    _array_fields = ("inputs",)
    _static_fields = ("hidden", "num_inputs", "scale", "num_params", "joint_shape")
    """A small smooth (tanh, hence C^∞ as Assumption 1 asks) MLP on per-entry input features.

    ``r^θ(s, a) = w2 · tanh(W1 x(s, a) + b1) + b2`` with inputs x [S, A_l, A_e, n_in]; θ is the flat
    concatenation of (W1 [hidden, n_in], b1 [hidden], w2 [hidden], b2 []).
    """

    def __init__(self, inputs, hidden: int = 16, scale: float = 1.0) -> None:
        array = _model_array("inputs", inputs, "[S, A_l, A_e, n_in]")
        self.hidden = check_hidden(hidden)
        self.inputs = jnp.asarray(array, dtype=jnp.result_type(float))
        self.num_inputs = int(array.shape[-1])
        self.scale = check_scale(scale)
        self.num_params = self.hidden * self.num_inputs + 2 * self.hidden + 1
        self.joint_shape = tuple(int(n) for n in array.shape[:3])

    def table(self, theta: jax.Array) -> jax.Array:
        """θ [num_params] -> reward table [S, A_l, A_e]."""
        return self.scale * mlp_forward(theta, self.inputs, self.hidden, self.num_inputs)

    def init(self, key: jax.Array, radius: float = 1.0) -> jax.Array:
        return random_in_ball(key, self.num_params, radius)
