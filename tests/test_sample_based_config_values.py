"""SampleBasedConfig names a bad field instead of letting it fail inside JAX (no compilation here)."""

import pytest

from gsiirl.algorithms.sample_based import SampleBasedConfig
from gsiirl.solvers.maddpg import MADDPGConfig

MADDPG = MADDPGConfig(iterations=2)


@pytest.mark.parametrize("name, value", [("data_episodes", 8.5), ("evaluation_episodes", 16.7), ("spsa_samples", 1.5),
                                         ("warmup_iterations", "4")])
def test_non_integer_count_is_refused_by_name(name, value):
    with pytest.raises(ValueError, match=f"^{name}: expected a positive integer"):
        SampleBasedConfig(maddpg=MADDPG, **{name: value})


@pytest.mark.parametrize("name, value", [("radius", "2"), ("temperature", float("inf")),
                                         ("regularization", float("inf")), ("radius", float("nan"))])
def test_bad_positive_number_is_refused_by_name(name, value):
    with pytest.raises(ValueError, match=f"^{name}: expected a finite positive number"):
        SampleBasedConfig(maddpg=MADDPG, **{name: value})


def test_bad_initial_radius_and_floor_are_refused_by_name():
    with pytest.raises(ValueError, match="^initial_radius: "):
        SampleBasedConfig(maddpg=MADDPG, initial_radius="1")
    with pytest.raises(ValueError, match="^perturbation_floor: "):
        SampleBasedConfig(maddpg=MADDPG, perturbation_floor=float("nan"))


def test_valid_numpy_free_config_still_accepted():
    SampleBasedConfig(maddpg=MADDPG, warmup_iterations=4, data_episodes=8, radius=1, initial_radius=0.5,
                      perturbation_floor=0)
