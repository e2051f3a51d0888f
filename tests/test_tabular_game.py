import numpy as np
import pytest

from gsiirl.games.random import random_tabular_game
from gsiirl.games.tabular import TabularGame
from gsiirl.solvers.equilibrium import solve_equilibrium


def _arrays(num_states=3, num_l=2, num_e=2):
    rng = np.random.default_rng(0)
    shape = (num_states, num_l, num_e)
    return dict(
        initial=np.full(num_states, 1.0 / num_states),
        horizon=3,
        discount=0.9,
        learner_reward=rng.normal(size=shape[:2]),
        learner_oracle=rng.normal(size=shape),
        expert_reward=rng.normal(size=shape),
        transitions=rng.dirichlet(np.ones(num_states), size=shape),
    )


def test_valid_game_builds_and_reports_sizes():
    game = TabularGame(**_arrays())
    assert game.joint_shape == (3, 2, 2) and game.horizon == 3 and not game.is_sparse


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("horizon", 0, "horizon"),
        ("horizon", 2.5, "horizon"),
        ("discount", 0.0, "discount"),
        ("discount", 1.5, "discount"),
        ("discount", "high", "discount"),
        ("initial", np.array([0.5, 0.5, 0.5]), "initial"),
        ("initial", np.array([1.0, 0.0]), "initial"),
        ("learner_reward", np.zeros((3, 3)), "learner_reward"),
        ("expert_reward", np.full((3, 2, 2), np.nan), "expert_reward"),
        ("learner_oracle", np.zeros((3, 2)), "learner_oracle"),
        ("learner_oracle", np.array([["a"]]), "learner_oracle"),
    ],
)
def test_validation_names_the_bad_field(field, value, message):
    arrays = _arrays()
    arrays[field] = value
    with pytest.raises(ValueError, match=message):
        TabularGame(**arrays)


def test_a_discount_given_as_text_is_refused():
    with pytest.raises(ValueError, match="discount: expected a number in"):
        TabularGame(**(_arrays() | {"discount": "0.9"}))


def test_rewards_beyond_float32_are_named_instead_of_becoming_inf(float32_mode):
    with float32_mode():
        with pytest.raises(ValueError, match=r"expert_reward: values beyond the range of float32 .*1e\+39"):
            TabularGame(**(_arrays() | {"expert_reward": np.full((3, 2, 2), 1e39)}))
    assert TabularGame(**(_arrays() | {"expert_reward": np.full((3, 2, 2), 1e39)})).expert_reward.dtype == np.float64


def test_transition_validation():
    arrays = _arrays()
    bad = np.array(arrays["transitions"])
    bad[0, 0, 0] = [0.5, 0.6, -0.1]
    with pytest.raises(ValueError, match="transitions: probabilities must be >= 0"):
        TabularGame(**(arrays | {"transitions": bad}))
    bad[0, 0, 0] = [0.5, 0.6, 0.1]
    with pytest.raises(ValueError, match=r"transitions: rows must sum to 1 \(row \(0, 0, 0\) sums to 1.2\)"):
        TabularGame(**(arrays | {"transitions": bad}))
    with pytest.raises(ValueError, match=r"^initial: entries must sum to 1 \(it sums to 2\)$"):  # 1-D: no "row ()"
        TabularGame(**(arrays | {"initial": np.full(3, 2 / 3)}))
    bad[0, 0, 0] = [np.inf, 0.0, 0.0]
    with pytest.raises(ValueError, match="transitions: contains NaN"):
        TabularGame(**(arrays | {"transitions": bad}))
    with pytest.raises(ValueError, match="transitions: expected shape"):
        TabularGame(**(arrays | {"transitions": np.ones((3, 2, 2, 2)) / 2}))


def test_sparse_validation():
    arrays = _arrays()
    del arrays["transitions"]
    indices = np.zeros((3, 2, 2, 1), dtype=np.int32)
    with pytest.raises(ValueError, match="successor_states: indices must lie"):
        TabularGame(**arrays, successor_states=indices + 5, successor_probs=np.ones((3, 2, 2, 1)))
    with pytest.raises(ValueError, match="successor_states: expected an integer"):
        TabularGame(**arrays, successor_states=indices.astype(float), successor_probs=np.ones((3, 2, 2, 1)))
    with pytest.raises(ValueError, match="successor_probs: rows must sum"):
        TabularGame(**arrays, successor_states=indices, successor_probs=np.full((3, 2, 2, 1), 0.5))
    with pytest.raises(ValueError, match="transitions: give either"):
        TabularGame(**arrays)


def test_dense_and_sparse_forms_agree():
    dense = random_tabular_game(3, num_states=7, num_successors=2, horizon=4)
    sparse = dense.to_sparse()
    assert sparse.is_sparse and sparse.dynamics.successor_states.shape[-1] == 2
    np.testing.assert_allclose(np.asarray(sparse.to_dense().dynamics.transitions),
                               np.asarray(dense.dynamics.transitions), atol=1e-12)
    a = solve_equilibrium(dense, dense.learner_true_reward, dense.expert_reward)
    b = solve_equilibrium(sparse, sparse.learner_true_reward, sparse.expert_reward)
    np.testing.assert_allclose(np.asarray(a.policy.learner), np.asarray(b.policy.learner), atol=1e-10)
    np.testing.assert_allclose(np.asarray(a.learner_value), np.asarray(b.learner_value), atol=1e-10)


def test_random_game_is_deterministic_in_its_seed():
    a, b = random_tabular_game(5), random_tabular_game(5)
    np.testing.assert_array_equal(np.asarray(a.expert_reward), np.asarray(b.expert_reward))
    assert not np.allclose(np.asarray(a.expert_reward), np.asarray(random_tabular_game(6).expert_reward))


@pytest.mark.parametrize("arguments,field", [({"seed": 1.5}, "seed"), ({"seed": -1}, "seed"),
                                             ({"num_states": 0}, "num_states"),
                                             ({"num_expert_actions": 2.0}, "num_expert_actions")])
def test_random_game_rejects_bad_sizes_naming_the_argument(arguments, field):
    with pytest.raises(ValueError, match=f"{field}: expected an integer"):
        random_tabular_game(**{"seed": 0, **arguments})


@pytest.mark.parametrize("value_shape", [(), (3,)])
def test_sparse_expected_next_value_matches_the_dense_transition_product(value_shape):
    """E[V(s') | s, a] from K successors equals the dense tensor product, for V [S] and V [S, n]."""
    from gsiirl.games.tabular import expected_next_value

    sparse = random_tabular_game(4, num_states=9, num_learner_actions=2, num_expert_actions=3, horizon=2,
                                 num_successors=3, sparse=True)
    values = np.random.default_rng(0).normal(size=(9,) + value_shape).astype(np.float32)
    got = np.asarray(expected_next_value(sparse.dynamics, values))
    transitions = np.asarray(sparse.to_dense().dynamics.transitions, np.float64)
    np.testing.assert_allclose(got, np.tensordot(transitions, values, axes=([3], [0])), rtol=1e-5, atol=1e-6)
    assert got.shape == (9, 2, 3) + value_shape
