"""Per-step reward models of the sample-based back-end: ``r^θ(φ)`` over a continuous game's features.

A tabular model (:mod:`gsiirl.rewards.models`) maps θ to a whole table. A simulator has no table, so its
models map θ and the feature vector φ(s, a, s') of one step to that step's modelled reward:

* :class:`LinearFeatureReward` — ``scale · φ·θ`` (the default of every :class:`~gsiirl.games.continuous.ContinuousGame`);
* :class:`MLPFeatureReward` — ``scale · (w2 · tanh(W1 φ + b1) + b2)``, smooth (C^∞, as Assumption 1 asks).

Your own model is any object with ``num_params`` (an int), ``reward(theta [P], features [..., d]) -> [...]``
(written with ``jax.numpy``: it is differentiated) and ``init(key, radius) -> [P]``.

Feature expectations generalise to μ(θ) = E[Σ_t γ^t ∇_θ r^θ(φ_t)] (Lemma 1/3): for a linear model
∇_θ r^θ = scale·φ does not depend on θ, for any other model it does, so the back-end keeps the sampled
features and differentiates at the current θ (:func:`gsiirl.games.continuous.expected_gradient`).
"""

from __future__ import annotations

from typing import Protocol

import jax

from gsiirl.rewards.models import check_hidden, check_scale, mlp_forward, random_in_ball
from gsiirl.validation import check_count


class FeatureRewardModel(Protocol):
    """Protocol: θ [num_params] and per-step features [..., d] -> modelled rewards [...]."""

    num_params: int

    def reward(self, theta: jax.Array, features: jax.Array) -> jax.Array: ...

    def init(self, key: jax.Array, radius: float = 1.0) -> jax.Array: ...


class LinearFeatureReward:
    """``r^θ(φ) = scale · φ·θ`` with θ [num_features] (the paper's linear case)."""

    def __init__(self, num_features: int, scale: float = 1.0) -> None:
        check_count("num_features", num_features, 1)
        self.num_features = self.num_params = int(num_features)
        self.scale = check_scale(scale)

    def reward(self, theta: jax.Array, features: jax.Array) -> jax.Array:
        """θ [d], features [..., d] -> [...]."""
        return self.scale * features @ theta

    def init(self, key: jax.Array, radius: float = 1.0) -> jax.Array:
        return random_in_ball(key, self.num_params, radius)

    def __repr__(self) -> str:
        return f"LinearFeatureReward(num_features={self.num_features}, scale={self.scale})"


class MLPFeatureReward:
    """A small tanh MLP on the step's features: ``scale · (w2 · tanh(W1 φ + b1) + b2)``.

    θ is the flat concatenation of (W1 [hidden, num_features], b1 [hidden], w2 [hidden], b2 []), the same
    layout as the tabular :class:`gsiirl.rewards.models.MLPReward`; ``num_params = hidden·(d + 2) + 1``.
    """

    def __init__(self, num_features: int, hidden: int = 16, scale: float = 1.0) -> None:
        check_count("num_features", num_features, 1)
        self.num_features = int(num_features)
        self.hidden = check_hidden(hidden)
        self.scale = check_scale(scale)
        self.num_params = self.hidden * self.num_features + 2 * self.hidden + 1

    def reward(self, theta: jax.Array, features: jax.Array) -> jax.Array:
        """θ [num_params], features [..., d] -> [...]."""
        return self.scale * mlp_forward(theta, features, self.hidden, self.num_features)

    def init(self, key: jax.Array, radius: float = 1.0) -> jax.Array:
        return random_in_ball(key, self.num_params, radius)

    def __repr__(self) -> str:
        return f"MLPFeatureReward(num_features={self.num_features}, hidden={self.hidden}, scale={self.scale})"


def model_identity(model) -> str:
    """What identifies a model in a checkpoint: its class and settings (its ``repr`` if the class defines one,
    else its ``num_params``: an object's default repr holds a memory address, which changes every run)."""
    settings = repr(model) if type(model).__repr__ is not object.__repr__ else f"num_params={model.num_params}"
    return f"{type(model).__module__}.{type(model).__qualname__}: {settings}"


def is_linear(model) -> bool:
    """True for :class:`LinearFeatureReward` itself, whose ∇_θ r^θ = scale·φ does not depend on θ (not for a
    subclass: it may override ``reward``, and would then get the linear shortcut's μ and no ``alive`` mask)."""
    return type(model) is LinearFeatureReward


__all__ = ["FeatureRewardModel", "LinearFeatureReward", "MLPFeatureReward", "is_linear", "model_identity"]
