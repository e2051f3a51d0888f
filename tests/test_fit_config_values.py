"""FitConfig rejects non-finite options by name and accepts NumPy scalars for every numeric option."""

import numpy as np
import pytest

from gsiirl import FitConfig


@pytest.mark.parametrize("name", ["radius", "temperature", "regularization", "outer_step_size", "inner_step_size"])
def test_infinite_option_is_refused_by_name(name):
    with pytest.raises(ValueError, match=f"^{name}: expected a finite positive number"):
        FitConfig.from_options(**{name: float("inf")})


def test_infinite_iteration_count_is_a_value_error():
    with pytest.raises(ValueError, match="^iterations: expected a positive integer"):
        FitConfig.from_options(iterations=float("inf"))


def test_numpy_float32_regularization_is_accepted_like_the_other_options():
    config = FitConfig.from_options(regularization=np.float32(0.25), temperature=np.float32(1.0))
    assert config.regularization == np.float32(0.25)
