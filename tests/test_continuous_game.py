"""validate_game: the constants, and every function traced once against the declared sizes (each broken
field is named); rollout accepts a Python or NumPy bool as ``done``; the real HRI and MPE games validate."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsiirl.games.continuous import ContinuousGame, rollout, validate_game


# ---------------------------------------------------------------- a tiny game: 2 learner agents, 1 expert
def _reset(key):
    return {"positions": jax.random.uniform(key, (3,), jnp.float32, -1.0, 1.0), "time": jnp.int32(0)}


def _step(state, learner_actions, expert_actions):
    moves = jnp.concatenate([learner_actions, expert_actions]) - 1
    positions = jnp.clip(state["positions"] + 0.25 * moves, -1.0, 1.0)
    return {"positions": positions, "time": state["time"] + 1}, jnp.array(False)


def _observations(state):
    """Learner agents see their own position and the expert's (2 numbers); the expert sees all three."""
    p = state["positions"]
    return jnp.stack([p[0], p[2]]), jnp.stack([p[1], p[2]]), p


def _gap(next_state):
    return jnp.abs(next_state["positions"][0] - next_state["positions"][2])


def _tiny_game() -> ContinuousGame:
    return ContinuousGame(
        num_learner_agents=2, num_expert_agents=1, num_actions=(3, 3, 3), observation_sizes=(2, 2, 3),
        state_size=3, horizon=5, discount=0.9, learner_feature_size=2, expert_feature_size=1,
        reset=_reset, step=_step, observations=_observations, global_observation=lambda s: s["positions"],
        learner_independent_reward=lambda s, la, ea, n: -jnp.abs(n["positions"][0]),
        learner_dependent_reward=lambda s, la, ea, n: -_gap(n),
        expert_reward=lambda s, la, ea, n: -jnp.abs(n["positions"][2] - 0.5),
        learner_features=lambda s, la, ea, n: jnp.stack([_gap(n), n["positions"][1]]),
        expert_features=lambda s, la, ea, n: jnp.abs(n["positions"][2] - 0.5)[None],
    )


def _uniform_policy(key, observations):
    return jax.random.randint(key, (observations.shape[0],), 0, 3)


def test_a_correct_game_validates_and_is_returned():
    game = _tiny_game()
    assert validate_game(game) is game


def _with_step(done):
    return lambda s, la, ea: (_step(s, la, ea)[0], done)


GAME = _tiny_game()
BROKEN = {
    # sizes that disagree with what the functions return
    "observation_sizes (3, 2, 2)": (
        dict(observation_sizes=(3, 2, 2)),
        "observations: agent 0 (learner): expected shape (3,) from observation_sizes[0], got (2,)"),
    "expert observation too long": (
        dict(observation_sizes=(2, 2, 4)),
        "observations: agent 2 (expert): expected shape (4,) from observation_sizes[2], got (3,)"),
    "expert observation first": (
        dict(observations=lambda s: _observations(s)[::-1]),
        "observations: agent 0 (learner): expected shape (2,) from observation_sizes[0], got (3,)"),
    "observation with a batch axis": (dict(observations=lambda s: tuple(o[None] for o in _observations(s))),
                                      "observations: agent 0 (learner): expected shape (2,) from observation_sizes[0], "
                                      "got (1, 2)"),
    "observations as one array": (dict(observations=lambda s: jnp.zeros((3, 3), jnp.float32)),
                                  "observations: expected a tuple of 3 per-agent 1-D arrays (learner agents first), "
                                  "got float32[3, 3]"),
    "observations for two agents": (dict(observations=lambda s: _observations(s)[:2]),
                                    "observations: expected 3 per-agent arrays (2 learner then 1 expert), got 2"),
    "state_size": (dict(state_size=4), "global_observation: expected shape (4,) from state_size, got (3,)"),
    "learner_feature_size": (dict(learner_feature_size=3),
                             "learner_features: expected shape (3,) from learner_feature_size, got (2,)"),
    "expert_feature_size": (dict(expert_feature_size=2),
                            "expert_features: expected shape (2,) from expert_feature_size, got (1,)"),
    "features as a scalar": (dict(expert_features=lambda s, la, ea, n: _gap(n)),
                             "expert_features: expected shape (1,) from expert_feature_size, got ()"),
    # rewards must be scalars
    "r_li per agent": (dict(learner_independent_reward=lambda s, la, ea, n: -jnp.abs(n["positions"][:2])),
                       "learner_independent_reward: expected a scalar, got shape (2,)"),
    "r_ld of shape [1]": (dict(learner_dependent_reward=lambda s, la, ea, n: -_gap(n)[None]),
                          "learner_dependent_reward: expected a scalar, got shape (1,)"),
    "r_e as a vector": (dict(expert_reward=lambda s, la, ea, n: n["positions"]),
                        "expert_reward: expected a scalar, got shape (3,)"),
    "complex reward": (dict(expert_reward=lambda s, la, ea, n: jnp.complex64(1.0)),
                       "expert_reward: expected real numbers, got dtype complex64"),
    # step
    "done of shape [1]": (dict(step=_with_step(jnp.array([False]))),
                          "step: done: expected a scalar bool, got shape (1,)"),
    "done as a float": (dict(step=_with_step(jnp.float32(0.0))), "step: done: expected a scalar bool, got float32[]"),
    "no done": (dict(step=lambda s, la, ea: _step(s, la, ea)[0]),
                "step: expected a pair (next_state, done), got dict"),
    "state gains a field": (dict(step=lambda s, la, ea: ({**_step(s, la, ea)[0], "extra": jnp.zeros(1)}, False)),
                            "step: the next state's structure differs from reset's"),
    "time becomes a float": (dict(step=lambda s, la, ea: ({**s, "time": jnp.float32(1.0)}, False)),
                             "step: the next state's ['time'] is float32[], reset's is int32[]"),
    "positions lose an entry": (dict(step=lambda s, la, ea: ({**s, "positions": s["positions"][:2]}, False)),
                                "step: the next state's ['positions'] is float32[2], reset's is float32[3]"),
    # constants (checked before anything is traced)
    "discount": (dict(discount=1.5), "discount: expected 0 < γ <= 1, got 1.5"),
    "horizon": (dict(horizon=0), "horizon: expected T >= 1, got 0"),
    "state_size 0": (dict(state_size=0), "state_size: expected an integer >= 1, got 0"),
    "num_actions length": (dict(num_actions=(3, 3)),
                           "num_actions: expected 3 positive ints (learner agents first), got (3, 3)"),
    "num_expert_agents 0": (dict(num_expert_agents=0), "num_expert_agents: expected an integer >= 1, got 0"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_a_broken_field_is_named(name):
    changes, message = BROKEN[name]
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_game(GAME._replace(**changes))


@pytest.mark.parametrize("field, function, message", [
    ("reset", lambda key: key.no_such_field,
     "reset: failed when traced on a PRNG key uint32[2] (AttributeError:"),
    ("step", lambda state, actions: (state, False),
     "step: failed when traced on reset's state and a joint action (learner_actions int32[2], "
     "expert_actions int32[1]) (TypeError:"),
    ("observations", lambda state: (state["velocity"],) * 3,
     "observations: failed when traced on reset's state (KeyError:"),
    ("learner_features", lambda s, la, ea, n: jnp.concatenate([la, jnp.zeros(2)]) @ jnp.ones(3),
     "learner_features: failed when traced on (state, learner_actions, expert_actions, next_state)"),
])
def test_an_error_inside_a_function_is_reraised_naming_it(field, function, message):
    with pytest.raises(ValueError, match=re.escape(message)) as caught:
        validate_game(GAME._replace(**{field: function}))
    assert caught.value.__cause__ is not None and str(caught.value.__cause__) in str(caught.value)


def test_wrong_types_raise_type_errors():
    with pytest.raises(TypeError, match=re.escape("expert_reward: expected a callable, got 0.0")):
        validate_game(GAME._replace(expert_reward=0.0))
    with pytest.raises(TypeError, match=re.escape("game: expected a ContinuousGame, got dict")):
        validate_game(GAME._asdict())


@pytest.mark.parametrize("done", [False, np.bool_(False), jnp.array(False)])
def test_a_python_or_numpy_bool_done_validates_and_rolls_out(done):
    game = validate_game(GAME._replace(step=_with_step(done)))
    data = rollout(jax.random.PRNGKey(0), game, _uniform_policy, 3)
    assert data.observations.shape == (3, 5, 3, 3) and data.learner_features.shape == (3, 5, 2)
    np.testing.assert_array_equal(data.alive, 1.0)
    np.testing.assert_array_equal(data.terminal, 0.0)


def test_a_python_true_done_terminates_after_the_first_step():
    game = validate_game(GAME._replace(step=_with_step(True)))
    data = rollout(jax.random.PRNGKey(0), game, _uniform_policy, 2)
    np.testing.assert_array_equal(data.alive, [[1, 0, 0, 0, 0]] * 2)
    np.testing.assert_array_equal(data.terminal, [[1, 0, 0, 0, 0]] * 2)
    assert float(jnp.abs(data.expert_reward[:, 1:]).max()) == 0.0


def test_the_real_hri_and_mpe_games_validate():
    from gsiirl.games import mpe
    from gsiirl.games.hri import make_hri_game

    for game in (make_hri_game(), mpe.make_game(), mpe.make_game(expert_features="adversary")):
        assert validate_game(game) is game
    # and a swapped size in the MPE game is caught by name (the adversary's observation is longer)
    game = mpe.make_game()
    sizes = game.observation_sizes
    with pytest.raises(ValueError, match=re.escape(f"observations: agent 0 (learner): expected shape ({sizes[2]},) "
                                                   f"from observation_sizes[0], got ({sizes[0]},)")):
        validate_game(game._replace(observation_sizes=(sizes[2], sizes[1], sizes[0])))
