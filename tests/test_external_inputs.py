"""What comes from outside the library — a real expert's trajectories, an r_ld oracle, saved result
files — is checked, and a mistake stops the run with a message naming the field."""

import json

import numpy as np
import pytest

import gsiirl
from gsiirl.algorithms.checkpoint import write_checkpoint
from gsiirl.algorithms.config import FitResult
from gsiirl.solvers.sampling import Trajectories

FAST = dict(num_trajectories=20, iterations=5)


@pytest.fixture(scope="module")
def game():
    return gsiirl.random_tabular_game(3, num_states=4, num_learner_actions=2, num_expert_actions=3, horizon=3)


class ScriptedExpert:
    """A real (non-traceable) expert whose returned trajectories are edited by ``damage``."""

    def __init__(self, game, damage):
        self.simulator, self.damage = gsiirl.SimulatedExpert(game, iterations=5), damage

    def interact(self, key, learner_reward, learner_policy, num_trajectories):
        played = self.simulator.interact(key, learner_reward, learner_policy, num_trajectories)
        return self.damage(Trajectories(*(np.asarray(x) for x in played)))


@pytest.mark.parametrize("damage, message", [
    (lambda t: t._replace(expert_actions=t.expert_actions + 3), r"expert_actions: indices must lie in \[0, 3\)"),
    (lambda t: t._replace(states=t.states - 1), r"states: indices must lie in \[0, 4\), got range \[-1"),
    (lambda t: Trajectories(*(x[:0] for x in t)), r"states: no trajectories \(N = 0\)"),
    (lambda t: t._replace(learner_actions=t.learner_actions.astype(bool)), "learner_actions: expected integer"),
    (lambda t: t._replace(states=t.states.astype(float)), "states: expected integer indices, got dtype float64"),
    (lambda t: Trajectories(*(x[:, :2] for x in t)), r"states: expected shape \[N, T\] with T = horizon = 3"),
    (lambda t: t._replace(expert_actions=t.expert_actions[:5]), "expert_actions: shape .* differs from states"),
    (lambda t: t[:2], "expected Trajectories"),
])
def test_a_real_experts_bad_trajectories_stop_the_run_naming_the_field(game, damage, message):
    with pytest.raises(ValueError, match="expert.interact: " + message):
        gsiirl.fit(game, outer_iters=1, seed=0, expert=ScriptedExpert(game, damage), **FAST)


def test_valid_external_trajectories_give_the_simulated_experts_numbers(game):
    # Same trajectories through the external path (validated, converted) and the built-in one.
    external = gsiirl.fit(game, outer_iters=2, seed=0, expert=ScriptedExpert(game, lambda t: t),
                          cross_term="fixed_data", **FAST)
    internal = gsiirl.fit(game, outer_iters=2, seed=0, expert=gsiirl.SimulatedExpert(game, iterations=5),
                          cross_term="fixed_data", **FAST)
    np.testing.assert_allclose(external.history["lower_level_loss"], internal.history["lower_level_loss"])


class Recorder:
    """Plays the simulated expert and keeps what it returned (the ground truth for a replayed recording)."""

    def __init__(self, game):
        self.simulator, self.played = gsiirl.SimulatedExpert(game, iterations=5), []

    def interact(self, key, learner_reward, learner_policy, num_trajectories):
        self.played.append(self.simulator.interact(key, learner_reward, learner_policy, num_trajectories))
        return self.played[-1]


def test_ma_irl_from_a_recording_equals_ma_irl_on_the_same_demonstrations(game):
    recorder = Recorder(game)
    live = gsiirl.fit(game, method="ma-irl", outer_iters=3, seed=4, expert=recorder, **FAST)
    assert len(recorder.played) == 1  # MA-IRL asks once
    recording = Trajectories(*(np.asarray(x) for x in recorder.played[0]))
    # the recording is used whole, whatever num_trajectories says
    replayed = gsiirl.fit(game, method="ma-irl", outer_iters=3, seed=4, iterations=5, num_trajectories=7,
                          expert=gsiirl.RecordedDemonstrations(recording))
    np.testing.assert_allclose(replayed.theta_e, live.theta_e, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(replayed.history["lower_level_loss"], live.history["lower_level_loss"], rtol=1e-6)
    assert "expert_policy_kl" not in replayed.history  # no hidden policy to compare with


def test_a_recording_is_refused_by_gsiirl_and_checked_against_the_game(game):
    played = gsiirl.SimulatedExpert(game, iterations=5).interact(
        __import__("jax").random.PRNGKey(0), game.learner_true_reward, None, 10)
    with pytest.raises(ValueError, match="^expert: RecordedDemonstrations replay fixed data"):
        gsiirl.fit(game, method="gsiirl", outer_iters=1, expert=gsiirl.RecordedDemonstrations(played), **FAST)
    bad = gsiirl.RecordedDemonstrations(played._replace(expert_actions=np.asarray(played.expert_actions) + 3))
    with pytest.raises(ValueError, match=r"expert_actions: indices must lie in \[0, 3\)"):
        gsiirl.fit(game, method="ma-irl", outer_iters=1, expert=bad, **FAST)
    with pytest.raises(ValueError, match="^trajectories: expected Trajectories"):
        gsiirl.RecordedDemonstrations(played[:2])


def test_adversarial_ma_irl_checks_its_demonstrations(game):
    from gsiirl.algorithms.ma_irl_adversarial import ma_irl_adversarial

    played = gsiirl.SimulatedExpert(game, iterations=5).interact(
        __import__("jax").random.PRNGKey(0), game.learner_true_reward, None, 10)
    bad = played._replace(learner_actions=played.learner_actions + 2)
    model = gsiirl.LinearReward(gsiirl.one_hot_features(game.joint_shape))
    with pytest.raises(ValueError, match=r"demonstrations: learner_actions: indices must lie in \[0, 2\)"):
        ma_irl_adversarial(game, model, bad)


class FunctionOracle:
    def __init__(self, function):
        self.function = function

    def query(self, states, learner_actions, expert_actions):
        return self.function(np.asarray(states), np.asarray(learner_actions), np.asarray(expert_actions))


@pytest.mark.parametrize("oracle, message", [
    (FunctionOracle(lambda s, al, ae: np.where(s == 2, np.nan, 0.0)),
     r"oracle: query returned 6 non-finite value\(s\) \(NaN or inf\), first at \(s, a_l, a_e\) = \(2, 0, 0\)"),
    (FunctionOracle(lambda s, al, ae: np.zeros(5)), r"asked at 24 \(s, a_l, a_e\) triples .* got shape \(5,\)"),
    (FunctionOracle(lambda s, al, ae: np.array(["calm"] * s.size)), "oracle: query must return numbers"),
    (gsiirl.TableOracle(np.zeros((4, 3, 2))), r"TableOracle table has shape \(4, 3, 2\), but the game's"),
])
def test_a_bad_oracle_answer_is_named(game, oracle, message):
    with pytest.raises(ValueError, match=message):
        gsiirl.fit(game, outer_iters=1, seed=0, oracle=oracle, **FAST)


def test_table_oracle_rejects_a_table_that_is_not_numeric_3d():
    with pytest.raises(ValueError, match=r"table: expected a numeric array \[S, A_l, A_e\]"):
        gsiirl.TableOracle(np.zeros((4, 3)))


def test_the_oracle_is_queried_once_on_the_whole_table(game):
    oracle = gsiirl.TableOracle(game.learner_oracle)
    gsiirl.fit(game, outer_iters=2, seed=0, oracle=oracle, **FAST)
    assert oracle.num_queries == game.num_states * game.num_learner_actions * game.num_expert_actions


@pytest.fixture(scope="module")
def result(game):
    return gsiirl.fit(game, outer_iters=2, seed=np.int64(4), **FAST)


def test_a_numpy_seed_is_saved_as_an_int(result, tmp_path):
    json_path, arrays_path = result.save(tmp_path / "run")
    assert FitResult.load(json_path).config["seed"] == 4
    assert arrays_path.exists()


def test_a_config_that_is_not_json_leaves_no_orphan_file(result, tmp_path):
    broken = FitResult(result.theta_l, result.theta_e, result.policy, result.history,
                       result.config | {"note": object()})
    with pytest.raises(ValueError, match="config: not JSON-serialisable"):
        broken.save(tmp_path / "run")
    assert list(tmp_path.iterdir()) == []


def test_dotted_names_keep_their_dots(result, tmp_path):
    first, _ = result.save(tmp_path / "lr0.5")
    second, _ = result.save(tmp_path / "lr0.25")
    assert {first.name, second.name} == {"lr0.5.json", "lr0.25.json"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lr0.25.json", "lr0.25.npz", "lr0.5.json", "lr0.5.npz"]
    for path in (tmp_path / "lr0.5", tmp_path / "lr0.5.json", tmp_path / "lr0.5.npz"):
        np.testing.assert_array_equal(np.asarray(FitResult.load(path).theta_l), np.asarray(result.theta_l))


def test_a_mismatched_pair_is_rejected(game, result, tmp_path):
    other = gsiirl.fit(game, outer_iters=1, seed=9, **FAST)
    json_a, arrays_a = result.save(tmp_path / "a")
    _, arrays_b = other.save(tmp_path / "b")
    arrays_a.write_bytes(arrays_b.read_bytes())
    with pytest.raises(ValueError, match="arrays_sha256: does not match a.json"):
        FitResult.load(json_a)


def test_non_finite_history_round_trips_as_standard_json(result, tmp_path):
    import json

    history = dict(result.history) | {"learner_return": [1.0, float("nan")]}
    with_nan = FitResult(result.theta_l, result.theta_e, result.policy, history, result.config)
    json_path, _ = with_nan.save(tmp_path / "run")
    document = json.loads(json_path.read_text(), parse_constant=lambda name: pytest.fail(f"non-standard {name}"))
    assert document["history"]["learner_return"] == [1.0, None]
    loaded = FitResult.load(json_path).history["learner_return"]
    assert loaded[0] == 1.0 and np.isnan(loaded[1])


class FailingExpert(ScriptedExpert):
    """Plays like the simulated expert, but raises on interaction number ``fail_at`` (0-based)."""

    def __init__(self, game, fail_at=None):
        super().__init__(game, lambda t: t)
        self.fail_at, self.calls = fail_at, 0

    def interact(self, key, learner_reward, learner_policy, num_trajectories):
        self.calls += 1
        if self.fail_at is not None and self.calls - 1 >= self.fail_at:
            raise RuntimeError("the study participant left")
        return super().interact(key, learner_reward, learner_policy, num_trajectories)


def test_a_crashed_run_resumes_from_its_checkpoint_with_the_uninterrupted_numbers(game, tmp_path):
    settings = dict(outer_iters=4, seed=5, **FAST)
    reference = gsiirl.fit(game, expert=FailingExpert(game), **settings)
    checkpoint = tmp_path / "study"
    with pytest.raises(RuntimeError, match="participant left"):
        gsiirl.fit(game, expert=FailingExpert(game, fail_at=2), checkpoint=checkpoint, **settings)
    assert FitResult.load(checkpoint).config["completed_iterations"] == 2
    resumed_expert = FailingExpert(game)
    resumed = gsiirl.fit(game, expert=resumed_expert, checkpoint=checkpoint, **settings)
    assert resumed_expert.calls == 2  # only the two unfinished iterations were played again
    for name, values in reference.history.items():
        if name != "wall_time":
            np.testing.assert_allclose(resumed.history[name], values, rtol=1e-6, atol=1e-9, err_msg=name)
    np.testing.assert_allclose(np.asarray(resumed.theta_l), np.asarray(reference.theta_l), rtol=1e-6, atol=1e-9)
    assert resumed.config == reference.config
    # Finished: calling again returns the saved result and never talks to the expert.
    again = gsiirl.fit(game, expert=FailingExpert(game, fail_at=0), checkpoint=checkpoint, **settings)
    assert again.history["learner_return"] == resumed.history["learner_return"]


def test_a_checkpoint_without_a_newer_metric_resumes_with_aligned_histories(game, tmp_path):
    """A checkpoint written before a metric existed (here: session 32's return correlations, removed from
    the saved history) continues with every history one value per iteration; the metric is NaN where the
    older code did not record it."""
    settings = dict(outer_iters=3, seed=5, **FAST)
    checkpoint = tmp_path / "older"
    with pytest.raises(RuntimeError, match="participant left"):
        gsiirl.fit(game, expert=FailingExpert(game, fail_at=2), checkpoint=checkpoint, **settings)
    saved = FitResult.load(checkpoint)
    older = {name: values for name, values in saved.history.items() if "correlation" not in name}
    assert len(older) < len(saved.history)
    write_checkpoint(checkpoint, FitResult(saved.theta_l, saved.theta_e, saved.policy, older, saved.config), 2)
    history = gsiirl.fit(game, expert=FailingExpert(game), checkpoint=checkpoint, **settings).history
    assert {len(values) for values in history.values()} == {3}
    assert np.isnan(history["expert_return_correlation"][:2]).all()
    assert np.isfinite(history["expert_return_correlation"][2])


def test_a_checkpoint_from_other_settings_or_another_game_is_refused(game, tmp_path):
    checkpoint = tmp_path / "run"
    gsiirl.fit(game, outer_iters=1, seed=0, checkpoint=checkpoint, **FAST)
    with pytest.raises(ValueError, match="checkpoint: .* written with seed=0, this call has seed=1"):
        gsiirl.fit(game, outer_iters=1, seed=1, checkpoint=checkpoint, **FAST)
    other = gsiirl.random_tabular_game(4, num_states=4, num_learner_actions=2, num_expert_actions=3, horizon=3)
    with pytest.raises(ValueError, match="checkpoint: .* written with game_sha256="):
        gsiirl.fit(other, outer_iters=1, seed=0, checkpoint=checkpoint, **FAST)
    # a checkpoint written by other library versions (edited here as an upgrade of jax would leave it)
    header = json.loads(checkpoint.with_suffix(".json").read_text())
    header["config"]["library_versions"]["jax"] = "0.0.1"
    checkpoint.with_suffix(".json").write_text(json.dumps(header))
    with pytest.raises(ValueError, match="checkpoint: .* written with library_versions=.*'jax': '0.0.1'"):
        gsiirl.fit(game, outer_iters=1, seed=0, checkpoint=checkpoint, **FAST)
    plain = tmp_path / "plain"
    gsiirl.fit(game, outer_iters=1, seed=0, **FAST).save(plain)
    with pytest.raises(ValueError, match="is a saved result, not a fit checkpoint"):
        gsiirl.fit(game, outer_iters=1, seed=0, checkpoint=plain, **FAST)


def test_a_run_state_checkpoint_adds_the_callers_identity_and_may_discard_a_mismatch(game, tmp_path):
    """``fit(checkpoint=RunState(...))`` (what ``gsiirl run`` passes): its identity is checked with the fit's
    own, a mismatch is refused — or deleted and started afresh if the RunState says so — and the returned
    result is the one without a checkpoint."""
    from gsiirl.algorithms.run_state import RunState

    reference = gsiirl.fit(game, outer_iters=2, seed=0, **FAST)
    path = tmp_path / "unit"
    first = gsiirl.fit(game, outer_iters=2, seed=0, checkpoint=RunState(path, {"options": {"a": 1}}), **FAST)
    assert first.config == reference.config
    assert FitResult.load(path).config["caller_identity"] == {"options": {"a": 1}}
    with pytest.raises(ValueError, match="written with caller_identity="):
        gsiirl.fit(game, outer_iters=2, seed=0, checkpoint=RunState(path, {"options": {"a": 2}}), **FAST)
    with pytest.raises(ValueError, match="written with seed=0, this call has seed=1"):
        gsiirl.fit(game, outer_iters=2, seed=1, checkpoint=RunState(path, {"options": {"a": 1}}), **FAST)
    fresh = gsiirl.fit(game, outer_iters=2, seed=1, checkpoint=RunState(path, {"options": {"a": 2}},
                                                                        discard_mismatched=True), **FAST)
    assert fresh.history == gsiirl.fit(game, outer_iters=2, seed=1, **FAST).history | {
        "wall_time": fresh.history["wall_time"]}
    assert FitResult.load(path).config["caller_identity"] == {"options": {"a": 2}}
    with pytest.raises(ValueError, match="checkpoint: expected a path .* got int"):
        gsiirl.fit(game, outer_iters=2, seed=0, checkpoint=7, **FAST)


def test_marl_writes_and_reuses_its_checkpoint(game, tmp_path):
    first = gsiirl.fit(game, method="marl", checkpoint=tmp_path / "marl", **FAST)
    again = gsiirl.fit(game, method="marl", checkpoint=tmp_path / "marl", **FAST)
    assert first.history == again.history and first.config == again.config


def test_a_run_that_needs_gigabytes_warns_before_allocating():
    import warnings

    from gsiirl.algorithms.gsiirl import _warn_if_large

    # 40 x 30 x 30 = 36,000 table entries: the one-hot features alone are 36,000² floats (> 4 GiB).
    big = gsiirl.random_tabular_game(0, num_states=40, num_learner_actions=30, num_expert_actions=30, horizon=1)
    with pytest.warns(UserWarning, match=r"fit: this run holds about .* GiB .* d_l = 36000, d_e = 36000"):
        _warn_if_large(big, (None, None), "gsiirl", "spsa")
    small_model = gsiirl.LinearReward(np.ones(big.joint_shape + (2,)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _warn_if_large(big, (small_model, small_model), "gsiirl", "spsa")
        _warn_if_large(big, (None, None), "marl", "spsa")


# -- placeholders of a real study, and reward models a user writes (a docs-only new-user review) -----------

class PlainLinear:
    """A user's own reward model: a plain Python class (no pytree), as docs/user_guide.md §1 shows."""

    def __init__(self, features, dtype=None):
        self.features, self.dtype, self.num_params = np.asarray(features), dtype, np.shape(features)[-1]

    def table(self, theta):
        import jax.numpy as jnp
        table = jnp.asarray(self.features) @ theta
        return table if self.dtype is None else table.astype(self.dtype)

    def init(self, key, radius=1.0):
        from gsiirl.rewards.models import random_in_ball
        return random_in_ball(key, self.num_params, radius)


def _features(game, d=3):
    return np.random.default_rng(0).normal(size=(*game.joint_shape, d))


def test_marl_with_a_real_expert_warns_that_the_expert_is_not_asked(game):
    with pytest.warns(UserWarning, match="method='marl' .* never asks the expert"):
        gsiirl.fit(game, method="marl", expert=ScriptedExpert(game, lambda t: t), **FAST)


def test_gsiirl_with_a_real_expert_and_a_zero_oracle_table_warns(game):
    placeholder = game.with_rewards(learner_oracle=np.zeros(game.joint_shape))
    with pytest.warns(UserWarning, match="no oracle, and game.learner_oracle is all zeros"):
        gsiirl.fit(placeholder, outer_iters=1, seed=0, expert=ScriptedExpert(game, lambda t: t),
                   cross_term="fixed_data", **FAST)


@pytest.mark.parametrize("case", ["oracle passed", "ma-irl", "simulated expert"])
def test_no_placeholder_warning_where_the_inputs_are_meaningful(game, case):
    """An oracle passed, MA-IRL (which does not use r_ld to learn), or the simulated expert: no warning."""
    import warnings
    placeholder = game.with_rewards(learner_oracle=np.zeros(game.joint_shape))
    real = ScriptedExpert(game, lambda t: t)
    kwargs = {"oracle passed": dict(expert=real, oracle=gsiirl.TableOracle(np.asarray(game.learner_oracle))),
              "ma-irl": dict(method="ma-irl", expert=real), "simulated expert": {}}[case]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gsiirl.fit(placeholder, outer_iters=1, seed=0, cross_term="fixed_data", **kwargs, **FAST)
    assert not [w for w in caught if "never asks the expert" in str(w.message) or "all zeros" in str(w.message)]


def test_a_reward_model_missing_its_interface_is_named(game):
    class OnlyTable:
        def table(self, theta):
            return theta

    with pytest.raises(TypeError, match="expert_model: a reward model needs .* OnlyTable lacks num_params, init"):
        gsiirl.fit(game, method="ma-irl", outer_iters=1, expert_model=OnlyTable(), **FAST)


def test_an_integer_reward_table_is_refused_before_jax_sees_it(game):
    model = PlainLinear(np.ones((*game.joint_shape, 2), dtype=np.int32), dtype=np.int32)
    with pytest.raises(ValueError, match="learner_model: table\\(theta\\) returned dtype int32, expected a floating"):
        gsiirl.fit(game, method="ma-irl", outer_iters=1, learner_model=model, **FAST)


def test_a_reward_table_of_another_float_dtype_is_refused(game):
    other = np.float32 if np.asarray(game.expert_reward).dtype == np.float64 else np.float16
    model = PlainLinear(_features(game), dtype=other)
    with pytest.raises(ValueError, match=f"expert_model: table\\(theta\\) returned dtype {np.dtype(other)}, but the "
                                         "game's arrays are"):
        gsiirl.fit(game, method="ma-irl", outer_iters=1, expert_model=model, **FAST)


def test_a_plain_python_reward_model_runs_without_jax_deprecations(game):
    """The size check used jnp.shape on the opaque model object (a DeprecationWarning now, an error in a
    future JAX); the model itself learns as the linear model with the same features does."""
    import warnings
    features = _features(game)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        plain = gsiirl.fit(game, method="ma-irl", outer_iters=2, seed=0, radius=2.0,
                           learner_model=PlainLinear(features), expert_model=PlainLinear(features), **FAST)
    linear = gsiirl.fit(game, method="ma-irl", outer_iters=2, seed=0, radius=2.0,
                        learner_model=gsiirl.LinearReward(features), expert_model=gsiirl.LinearReward(features), **FAST)
    np.testing.assert_allclose(plain.theta_e, linear.theta_e, rtol=1e-4, atol=1e-5)
