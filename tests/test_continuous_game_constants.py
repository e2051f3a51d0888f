"""validate_game names bad reward scales and a non-numeric discount (they used to pass and fail later)."""

import jax
import jax.numpy as jnp
import pytest

from gsiirl.games.continuous import ContinuousGame, validate_game


def _game(**overrides):
    feature = lambda state, la, ea, next_state: next_state[:1]
    reward = lambda state, la, ea, next_state: next_state[0]
    fields = dict(num_learner_agents=1, num_expert_agents=1, num_actions=(2, 2), observation_sizes=(1, 1),
                  state_size=1, horizon=2, discount=0.9, learner_feature_size=1, expert_feature_size=1,
                  reset=lambda key: jax.random.uniform(key, (1,)),
                  step=lambda state, la, ea: (state + 0.1 * (la - ea).astype(jnp.float32), jnp.array(False)),
                  observations=lambda state: (state, -state), global_observation=lambda state: state,
                  learner_independent_reward=reward, learner_dependent_reward=reward, expert_reward=reward,
                  learner_features=feature, expert_features=feature)
    return ContinuousGame(**(fields | overrides))


def test_valid_game_passes():
    validate_game(_game(learner_reward_scale=2, expert_reward_scale=-0.5))
    validate_game(_game(discount=jnp.float32(0.9), learner_reward_scale=jnp.float32(2.0)))


@pytest.mark.parametrize("name", ["learner_reward_scale", "expert_reward_scale"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), 0.0, "2", None])
def test_bad_reward_scale_is_refused_by_name(name, value):
    with pytest.raises(ValueError, match=f"^{name}: expected a finite nonzero number"):
        validate_game(_game(**{name: value}))


def test_string_discount_is_refused():
    with pytest.raises(ValueError, match="^discount: expected 0 < γ <= 1"):
        validate_game(_game(discount="0.9"))
