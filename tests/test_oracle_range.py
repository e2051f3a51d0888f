"""An oracle value that overflows float32 (JAX's default) is reported as the oracle's, not as a NaN table."""

import jax
import numpy as np
import pytest

from gsiirl.algorithms.interaction import query_full_table


@pytest.fixture
def float32_mode():
    previous = jax.config.jax_enable_x64  # the test suite runs in x64; users by default do not
    jax.config.update("jax_enable_x64", False)
    yield
    jax.config.update("jax_enable_x64", previous)


class Huge:
    def query(self, states, learner_actions, expert_actions):
        return np.where(states == 1, 1e39, 0.0)


def test_overflowing_oracle_value_is_named(float32_mode):
    with pytest.raises(ValueError, match=r"^oracle: query returned 4 value\(s\) beyond the range of float32, "
                                         r"first at \(s, a_l, a_e\) = \(1, 0, 0\)"):
        query_full_table(Huge(), (2, 2, 2))


def test_ordinary_values_pass(float32_mode):
    class Ones:
        def query(self, states, learner_actions, expert_actions):
            return np.ones(len(states))
    np.testing.assert_array_equal(query_full_table(Ones(), (2, 1, 3)), np.ones((2, 1, 3)))
