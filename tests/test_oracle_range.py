"""An oracle value that overflows float32 (JAX's default) is reported as the oracle's, not as a NaN table."""

import numpy as np
import pytest

from gsiirl.algorithms.interaction import query_full_table


class Huge:
    def query(self, states, learner_actions, expert_actions):
        return np.where(states == 1, 1e39, 0.0)


def test_overflowing_oracle_value_is_named(float32_mode):  # the suite runs in x64; users by default do not
    message = (r"^oracle: query returned 4 value\(s\) beyond the range of float32, "
               r"first at \(s, a_l, a_e\) = \(1, 0, 0\)")
    with float32_mode(), pytest.raises(ValueError, match=message):
        query_full_table(Huge(), (2, 2, 2))


def test_ordinary_values_pass(float32_mode):
    class Ones:
        def query(self, states, learner_actions, expert_actions):
            return np.ones(len(states))
    with float32_mode():
        np.testing.assert_array_equal(query_full_table(Ones(), (2, 1, 3)), np.ones((2, 1, 3)))
