"""Reward models ``r^θ(s, a)`` with θ in a ball (DESIGN §2): tables for tabular games, per-step models of a
simulator's features for continuous games."""

from gsiirl.rewards.feature_models import FeatureRewardModel, LinearFeatureReward, MLPFeatureReward
from gsiirl.rewards.models import LinearReward, MLPReward, RewardModel, one_hot_features
from gsiirl.rewards.projection import project_to_ball

__all__ = ["FeatureRewardModel", "LinearFeatureReward", "LinearReward", "MLPFeatureReward", "MLPReward", "RewardModel",
           "one_hot_features", "project_to_ball"]
