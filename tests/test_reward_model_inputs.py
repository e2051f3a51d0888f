"""Reward models name their own bad field (not a NaN learner_reward / expert_reward later in fit)."""

import numpy as np
import pytest

from gsiirl import LinearReward, MLPReward

SHAPE = (2, 2, 2, 3)


@pytest.mark.parametrize("value, message", [
    (np.full(SHAPE, "x"), "features: expected a real-valued numeric array"),
    (np.full(SHAPE, None), "features: expected a real-valued numeric array"),
    (np.full(SHAPE, np.inf), "features: contains NaN or infinite values"),
    (np.ones(SHAPE[:3]), r"features: expected shape \[S, A_l, A_e, d\]"),
    (np.ones(SHAPE[:3] + (0,)), r"features: expected at least one feature \(d >= 1\)"),
])
def test_linear_features_are_checked(value, message):
    with pytest.raises(ValueError, match=message):
        LinearReward(value)


@pytest.mark.parametrize("model", [LinearReward, MLPReward])
@pytest.mark.parametrize("scale", [float("nan"), float("inf"), "2"])
def test_scale_is_checked(model, scale):
    with pytest.raises(ValueError, match="^scale: expected a finite number"):
        model(np.ones(SHAPE), scale=scale)


def test_mlp_inputs_and_hidden_are_checked():
    with pytest.raises(ValueError, match="^inputs: contains NaN"):
        MLPReward(np.full(SHAPE, np.nan))
    for hidden in (2.5, "4", 0, True):
        with pytest.raises(ValueError, match="^hidden: expected a positive integer"):
            MLPReward(np.ones(SHAPE), hidden=hidden)


def test_valid_models_unchanged():
    features = np.arange(np.prod(SHAPE), dtype=np.int64).reshape(SHAPE)
    model = LinearReward(features, scale=np.float32(2.0))
    np.testing.assert_allclose(model.table(np.ones(3)), 2.0 * features.sum(-1))
    assert MLPReward(np.ones(SHAPE, bool), hidden=np.int64(4)).num_params == 4 * 3 + 2 * 4 + 1
