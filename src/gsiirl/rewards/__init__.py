"""Reward models ``r^θ(s, a)`` with θ in a ball (DESIGN §2)."""

from gsiirl.rewards.models import LinearReward, MLPReward, RewardModel, one_hot_features
from gsiirl.rewards.projection import project_to_ball

__all__ = ["LinearReward", "MLPReward", "RewardModel", "one_hot_features", "project_to_ball"]
