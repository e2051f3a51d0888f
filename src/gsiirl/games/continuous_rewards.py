"""Rewards and feature expectations of a :class:`~gsiirl.games.continuous.ContinuousGame`'s rollouts: the
teams' per-step rewards under a :class:`~gsiirl.games.continuous.RewardParams` (true or modelled), and the
Monte-Carlo μ(θ) = E[Σ_t γ^t ∇_θ r^θ(φ_t)] of Lemmas 1/3 for any reward model of
:mod:`gsiirl.rewards.feature_models` (all re-exported by :mod:`gsiirl.games.continuous`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp

from gsiirl.rewards.feature_models import LinearFeatureReward, is_linear

if TYPE_CHECKING:  # annotations only: gsiirl.games.continuous imports this module
    from gsiirl.games.continuous import ContinuousGame, RewardParams, Rollout


def reward_models(game: ContinuousGame) -> tuple:
    """(learner model, expert model): the game's ``*_reward_model``, or the linear default
    ``LinearFeatureReward(feature_size, *_reward_scale)``."""
    models = []
    for team in ("learner", "expert"):
        model = getattr(game, f"{team}_reward_model", None)
        models.append(model if model is not None else LinearFeatureReward(
            getattr(game, f"{team}_feature_size"), getattr(game, f"{team}_reward_scale")))
    return tuple(models)


def modelled_rewards(model, theta: jax.Array, features: jax.Array, alive: jax.Array) -> jax.Array:
    """r^θ(φ) per step: θ [P], features [..., d], alive [...] -> [...], 0 after termination.

    (A linear model gives 0 there by itself: the rollout's features are already 0.)"""
    values = model.reward(theta, features)
    return values if is_linear(model) else values * alive


def team_rewards(game: ContinuousGame, rollout: Rollout, params: RewardParams) -> jax.Array:
    """Per-step rewards of the two teams under ``params``: [N, T, 2] (learner, expert)."""
    model_l, model_e = reward_models(game)
    modelled_ld = modelled_rewards(model_l, params.theta_l, rollout.learner_features, rollout.alive)
    modelled_e = modelled_rewards(model_e, params.theta_e, rollout.expert_features, rollout.alive)
    learner = rollout.learner_independent_reward + params.use_true_ld * rollout.learner_dependent_reward
    learner = learner + (1.0 - params.use_true_ld) * modelled_ld
    expert = params.use_true_e * rollout.expert_reward + (1.0 - params.use_true_e) * modelled_e
    return jnp.stack([learner, expert], axis=-1)


def discount_weights(horizon: int, discount: float, dtype) -> jax.Array:
    """γ^t for t = 0 … horizon − 1: [horizon]."""
    return discount ** jnp.arange(horizon, dtype=dtype)


def discounted_sum(values: jax.Array, discount: float) -> jax.Array:
    """Σ_t γ^t values[:, t, ...] for values [N, T, ...]: returns [N, ...]."""
    weights = discount_weights(values.shape[1], discount, values.dtype)
    return jnp.tensordot(weights, jnp.moveaxis(values, 1, 0), axes=(0, 0))


class FeatureSample(NamedTuple):
    """The sampled steps a nonlinear model's μ(θ) is computed from (θ-free, so it can be kept and re-used)."""

    features: jax.Array  # [N, T, d]
    weights: jax.Array  # [N, T] γ^t · alive / N


def gradient_statistics(game: ContinuousGame, data: Rollout) -> tuple:
    """What μ_l(θl), μ_e(θe) need of a rollout, for each team: a linear model's μ itself
    (scale · mean over episodes of Σ_t γ^t φ(s^t, a^t), [d]: it does not depend on θ), any other model's
    :class:`FeatureSample`. :func:`expected_gradient` turns one into μ at a θ."""
    out = []
    for model, features in zip(reward_models(game), (data.learner_features, data.expert_features)):
        if is_linear(model):
            out.append(jnp.mean(discounted_sum(features, game.discount), axis=0) * model.scale)
        else:
            weights = discount_weights(features.shape[1], game.discount, features.dtype) * data.alive
            out.append(FeatureSample(features, weights / features.shape[0]))
    return tuple(out)


def expected_gradient(model, theta: jax.Array, statistic) -> jax.Array:
    """Monte-Carlo μ(θ) = E[Σ_t γ^t ∇_θ r^θ(φ_t)] [P] from :func:`gradient_statistics`' ``statistic``
    (Lemmas 1/3's feature expectation, for any differentiable model)."""
    if is_linear(model):
        return statistic
    return jax.grad(lambda th: jnp.sum(statistic.weights * model.reward(th, statistic.features)))(theta)


def feature_expectations(game: ContinuousGame, data: Rollout, theta_l=None, theta_e=None) -> tuple[jax.Array, jax.Array]:
    """Monte-Carlo μ_l [P_l], μ_e [P_e] = E[Σ_t γ^t ∇_θ r^θ(φ_t)].

    For the default linear models ∇_θ r^θ = scale · φ: μ = scale · mean over episodes of Σ_t γ^t φ(s^t, a^t)
    (it includes the game's ``learner_reward_scale`` / ``expert_reward_scale``), and the θ's are not needed.
    A nonlinear model's μ depends on θ: pass that team's θ.
    """
    out = []
    for team, model, statistic, theta in zip(("learner", "expert"), reward_models(game),
                                             gradient_statistics(game, data), (theta_l, theta_e)):
        if theta is None and not is_linear(model):
            raise ValueError(f"theta_{team[0]}: expected the {team} model's parameters "
                             f"[{model.num_params}]: μ of a nonlinear reward model depends on θ")
        out.append(expected_gradient(model, theta, statistic))
    return tuple(out)
