"""Resumable sample-based runs (``run_seeds(..., checkpoint=...)``): a run interrupted at any step and
continued from its checkpoint gives the uninterrupted run's numbers bit for bit; a finished checkpoint is
returned without computing; a checkpoint of another run, or a damaged one, is refused by name."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gsiirl.algorithms.run_state import RunState
from gsiirl.algorithms.sample_based import SampleBasedGSIIRL

pytestmark = pytest.mark.filterwarnings("ignore:gsiirl. outer iteration .*exactly 0:RuntimeWarning")

ITERATIONS = 3


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def small(tiny_hri_backend):
    return tiny_hri_backend(reset_worse_than_random=True)


KEYS = jnp.stack([jax.random.PRNGKey(4), jax.random.PRNGKey(9)])


def _without_wall_time(histories):
    return [[{k: v for k, v in row.items() if k != "wall_time"} for row in history] for history in histories]


def _assert_same_states(a, b):
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _interrupt_after(monkeypatch, calls: int):
    """Make the ``calls``-th fine-tune of the back-end (warm-ups excluded) raise Interrupted."""
    original = SampleBasedGSIIRL._fine_tune
    count = [0]

    def fine_tune(self, *args, **kwargs):
        count[0] += 1
        if count[0] == calls:
            raise Interrupted
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SampleBasedGSIIRL, "_fine_tune", fine_tune)
    return lambda: monkeypatch.setattr(SampleBasedGSIIRL, "_fine_tune", original)


def _count_every_team_as_restarted(monkeypatch):
    """The tiny policies are never worse than random play, so no team restarts; to check that the restart
    counts survive an interruption, every fine-tune reports both teams of every member as restarted."""
    original = SampleBasedGSIIRL._fine_tune

    def fine_tune(self, ops, keys, states, params):
        states, measured, _ = original(self, ops, keys, states, params)
        return states, measured, np.ones(params.theta_l.shape[:2] + (2,), int)

    monkeypatch.setattr(SampleBasedGSIIRL, "_fine_tune", fine_tune)


@pytest.mark.parametrize("method, interruptions, options", [
    ("gsiirl", (2, 2), {}), ("ma-irl", (2, 5), {}), ("ma-irl", (2, 5), {"ma_irl_gradient": "best_response"}),
    ("marl", (2,), {})])
def test_an_interrupted_run_continues_to_the_uninterrupted_numbers(small, tiny_hri_backend, tmp_path, monkeypatch,
                                                                   method, interruptions, options):
    """Ground truth: the same run without a checkpoint. MA-IRL is interrupted once in its demonstrations
    (fine-tune 2 of 3) and once in its outer loop (with best responses too: their frozen teams' actors come
    from the demonstrator before the interruption); the restored iterations are not reported again."""
    if options:
        small = tiny_hri_backend(reset_worse_than_random=True, **options)
    _count_every_team_as_restarted(monkeypatch)
    reference, reference_states = small.run_seeds(method, KEYS, ITERATIONS, final_pair="model")
    path = tmp_path / "run"
    for calls in interruptions:
        restore = _interrupt_after(monkeypatch, calls)
        with pytest.raises(Interrupted):
            small.run_seeds(method, KEYS, ITERATIONS, checkpoint=path)
        restore()
        assert path.with_suffix(".json").exists() and path.with_suffix(".npz").exists()
    seen = []
    histories, states = small.run_seeds(method, KEYS, ITERATIONS, lambda k, m: seen.append(k), checkpoint=path)
    assert _without_wall_time(histories) == _without_wall_time(reference)
    assert histories[0][-1]["learner_team_resets"] == (ITERATIONS if method == "marl" else 1)
    _assert_same_states(states, reference_states)
    if method == "gsiirl":  # interrupted in iterations 1 and 2: iterations 0 and 1 were restored
        assert seen == [2]
    # finished: read back, nothing is computed (any fine-tune would raise)
    restore = _interrupt_after(monkeypatch, 1)
    again, again_states = small.run_seeds(method, KEYS, ITERATIONS, checkpoint=path)
    restore()
    assert _without_wall_time(again) == _without_wall_time(histories)
    _assert_same_states(again_states, states)


def test_gsiirl_checkpoint_returns_both_final_pairs(small, tmp_path):
    path = tmp_path / "pairs"
    _, first = small.run("gsiirl", jax.random.PRNGKey(2), 2, final_pair="both", checkpoint=path)
    _, again = small.run("gsiirl", jax.random.PRNGKey(2), 2, final_pair="both", checkpoint=path)
    for name in ("model", "interaction"):
        _assert_same_states(first[name], again[name])


def test_a_checkpoint_of_another_run_is_refused_by_name(small, tmp_path):
    path = tmp_path / "other"
    small.run("marl", jax.random.PRNGKey(1), 2, checkpoint=path)
    with pytest.raises(ValueError, match="iterations=2, this run has iterations=3"):
        small.run("marl", jax.random.PRNGKey(1), 3, checkpoint=path)
    with pytest.raises(ValueError, match="written with keys="):
        small.run("marl", jax.random.PRNGKey(2), 2, checkpoint=path)
    with pytest.raises(ValueError, match="written with method='marl'"):
        small.run("ma-irl", jax.random.PRNGKey(1), 2, checkpoint=path)
    from dataclasses import replace
    other = SampleBasedGSIIRL(small.game, replace(small.config, regularization=0.25))
    with pytest.raises(ValueError, match="written with config="):
        other.run("marl", jax.random.PRNGKey(1), 2, checkpoint=path)
    # the caller's own identity fields, and discarding a mismatched checkpoint instead of refusing it
    with pytest.raises(ValueError, match="written with experiment=None, this run has experiment='mine'"):
        small.run("marl", jax.random.PRNGKey(1), 2, checkpoint=RunState(path, {"experiment": "mine"}))
    small.run("marl", jax.random.PRNGKey(1), 2,
              checkpoint=RunState(path, {"experiment": "mine"}, discard_mismatched=True))
    assert json.loads(path.with_suffix(".json").read_text())["identity"]["experiment"] == "mine"
    with pytest.raises(ValueError, match="checkpoint: expected a path .* got int"):
        small.run("marl", jax.random.PRNGKey(1), 2, checkpoint=3)


def test_a_damaged_checkpoint_is_refused(small, tmp_path):
    path = tmp_path / "damaged"
    small.run("marl", jax.random.PRNGKey(1), 2, checkpoint=path)
    npz = path.with_suffix(".npz")
    npz.write_bytes(npz.read_bytes()[:-10])
    with pytest.raises(ValueError, match="is not the file .* was saved with"):
        small.run("marl", jax.random.PRNGKey(1), 2, checkpoint=path)
    npz.unlink()
    with pytest.raises(ValueError, match="is missing"):
        small.run("marl", jax.random.PRNGKey(1), 2, checkpoint=path)
    path.with_suffix(".json").write_text("{}")
    with pytest.raises(ValueError, match="is not a gsiirl-sample-based-checkpoint file"):
        small.run("marl", jax.random.PRNGKey(1), 2, checkpoint=path)
    RunState(path).delete()
    assert not path.with_suffix(".json").exists()
    small.run("marl", jax.random.PRNGKey(1), 2, checkpoint=path)  # a fresh start


def test_an_interrupted_retraining_continues_to_the_uninterrupted_numbers(small, tmp_path, monkeypatch):
    """The reward-transfer retraining (warm-up + fine-tunes on fixed learned rewards) saves itself like a
    MARL run: interrupted in its second fine-tune, it continues with the remaining ones only and gives the
    numbers of the same retraining without a checkpoint; other θ's are refused by name."""
    thetas_l = jax.random.uniform(jax.random.PRNGKey(5), (2, small.game.learner_feature_size), minval=-0.5, maxval=0.5)
    thetas_e = jax.random.uniform(jax.random.PRNGKey(6), (2, small.game.expert_feature_size), minval=-0.5, maxval=0.5)
    reference = small.retrained_evaluations(KEYS, thetas_l, thetas_e, ITERATIONS)
    path = tmp_path / "retraining"
    restore = _interrupt_after(monkeypatch, 2)
    with pytest.raises(Interrupted):
        small.retrained_evaluations(KEYS, thetas_l, thetas_e, ITERATIONS, checkpoint=path)
    restore()
    assert json.loads(path.with_suffix(".json").read_text())["completed"] == 1
    original, calls = SampleBasedGSIIRL._fine_tune, []
    monkeypatch.setattr(SampleBasedGSIIRL, "_fine_tune", lambda self, *a: calls.append(1) or original(self, *a))
    resumed = small.retrained_evaluations(KEYS, thetas_l, thetas_e, ITERATIONS, checkpoint=path)
    monkeypatch.setattr(SampleBasedGSIIRL, "_fine_tune", original)
    assert len(calls) == ITERATIONS - 1 and resumed == reference
    with pytest.raises(ValueError, match="written with theta_l="):
        small.retrained_evaluations(KEYS, thetas_l + 0.125, thetas_e, ITERATIONS, checkpoint=path)
    with pytest.raises(ValueError, match="written with true_expert_reward=False"):
        small.retrained_evaluations(KEYS, thetas_l, thetas_e, ITERATIONS, checkpoint=path, true_expert_reward=True)
    with pytest.raises(ValueError, match="written with method='retrained'"):
        small.run_seeds("marl", KEYS, ITERATIONS, checkpoint=path)


def test_parts_of_a_checkpoint_are_deleted_with_it(tmp_path):
    store = RunState(tmp_path / "gsiirl-seeds-0-4", {"a": 1})
    part = store.part("retraining")
    assert part.json_path == tmp_path / "gsiirl-seeds-0-4.retraining.json" and part.identity == {"a": 1}
    neighbour = RunState(tmp_path / "gsiirl-seeds-0-49")
    for each in (store, part, neighbour):
        each.save("p", 1, {"tree": np.zeros(2, np.float32)})
    store.delete()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["gsiirl-seeds-0-49.json", "gsiirl-seeds-0-49.npz"]
    for bad in ("", "a.b", "a/b"):
        with pytest.raises(ValueError, match="name: expected a non-empty name"):
            store.part(bad)


def test_stored_structure_must_match_the_run(tmp_path):
    store = RunState(tmp_path / "s", {"a": 1})
    store.save("p", 1, {"tree": {"x": np.zeros(3, np.float32)}}, {"rows": [1.5]})
    phase, completed, trees, info = store.load(lambda phase, completed: {"tree": {"x": np.ones(3, np.float32)}})
    assert (phase, completed, info["rows"]) == ("p", 1, [1.5])
    np.testing.assert_array_equal(trees["tree"]["x"], np.zeros(3))
    with pytest.raises(ValueError, match="does not have the structure"):
        store.load(lambda phase, completed: {"tree": {"x": np.ones(4, np.float32)}})
    with pytest.raises(ValueError, match="does not have the structure"):
        store.load(lambda phase, completed: {"tree": {"y": np.ones(3, np.float32)}})


SMALL_HRI = {"horizon": 5, "hidden": 8, "num_envs": 4, "finetune_cycles": 1, "updates_per_cycle": 2,
             "buffer_cycles": 2, "minibatch_size": 16, "warmup_cycles": 2, "data_episodes": 8,
             "evaluation_episodes": 8, "spsa_samples": 1, "seed_batch": 2, "retrain_evaluation": False}


def test_an_interrupted_experiment_unit_continues_from_its_checkpoint(tmp_path, monkeypatch):
    """`gsiirl run` level: a unit interrupted mid-run leaves its checkpoint in OUT/.checkpoints; the
    resumed run continues it (computing only the unfinished iteration) and ends with the
    uninterrupted run's numbers; a stored unit's checkpoint is deleted; --force starts afresh."""
    from gsiirl.experiments.parallel import CHECKPOINT_DIR
    from gsiirl.experiments.runner import run_experiment

    def run(out, **kwargs):
        return run_experiment("hri", out_dir=out, methods=["gsiirl"], seeds=2, iterations=ITERATIONS,
                              options=SMALL_HRI, **kwargs)

    reference = run(tmp_path / "reference")
    assert not (tmp_path / "reference" / CHECKPOINT_DIR).exists()  # stored, so deleted, and the folder too
    restore = _interrupt_after(monkeypatch, 3)  # iterations 0 and 1 finish, 2 is interrupted
    with pytest.raises(Interrupted):
        run(tmp_path / "out")
    restore()
    saved = tmp_path / "out" / CHECKPOINT_DIR / "gsiirl-seeds-0-1.json"
    assert json.loads(saved.read_text())["completed"] == 2
    original, calls = SampleBasedGSIIRL._fine_tune, []
    monkeypatch.setattr(SampleBasedGSIIRL, "_fine_tune", lambda self, *a: calls.append(1) or original(self, *a))
    resumed = run(tmp_path / "out")
    monkeypatch.setattr(SampleBasedGSIIRL, "_fine_tune", original)
    assert len(calls) == 1  # only iteration 2's fine-tune (t_k = 1): no warm-up, no iteration redone
    assert not saved.exists()
    for seed in ("0", "1"):
        ours, theirs = (r["methods"]["gsiirl"]["seeds"][seed] for r in (resumed, reference))
        assert {k: v for k, v in ours.items() if k != "wall_time"} == \
            {k: v for k, v in theirs.items() if k != "wall_time"}
    # --force discards an earlier run's checkpoints instead of continuing them
    restore = _interrupt_after(monkeypatch, 3)
    with pytest.raises(Interrupted):
        run(tmp_path / "forced", force=True)
    restore()
    assert (tmp_path / "forced" / CHECKPOINT_DIR / "gsiirl-seeds-0-1.json").exists()
    restore = _interrupt_after(monkeypatch, 1)
    with pytest.raises(Interrupted):
        run(tmp_path / "forced", force=True)
    restore()
    assert json.loads((tmp_path / "forced" / CHECKPOINT_DIR / "gsiirl-seeds-0-1.json").read_text())["completed"] == 0


def test_a_unit_interrupted_in_its_retraining_keeps_its_run_and_finished_fine_tunes(tmp_path, monkeypatch):
    """`gsiirl run hri` with the reward-transfer retraining: a unit interrupted in the retraining's second
    fine-tune neither recomputes its finished run nor the retraining's first fine-tune, and ends with the
    uninterrupted numbers (the ``retrained_*`` metrics included); no checkpoint is left behind."""
    from gsiirl.experiments.parallel import CHECKPOINT_DIR
    from gsiirl.experiments.runner import run_experiment

    def run(out):
        return run_experiment("hri", out_dir=out, methods=["ma-irl"], seeds=2, iterations=ITERATIONS,
                              options={**SMALL_HRI, "retrain_evaluation": True})

    original, calls = SampleBasedGSIIRL._fine_tune, []
    monkeypatch.setattr(SampleBasedGSIIRL, "_fine_tune", lambda self, *a: calls.append(1) or original(self, *a))
    reference = run(tmp_path / "reference")
    monkeypatch.setattr(SampleBasedGSIIRL, "_fine_tune", original)
    assert len(calls) == 3 * ITERATIONS  # demonstrations, outer loop, retraining
    restore = _interrupt_after(monkeypatch, 2 * ITERATIONS + 2)
    with pytest.raises(Interrupted):
        run(tmp_path / "out")
    restore()
    saved = tmp_path / "out" / CHECKPOINT_DIR / "ma-irl-seeds-0-1.retraining.json"
    assert json.loads(saved.read_text())["completed"] == 1
    calls.clear()
    monkeypatch.setattr(SampleBasedGSIIRL, "_fine_tune", lambda self, *a: calls.append(1) or original(self, *a))
    resumed = run(tmp_path / "out")
    monkeypatch.setattr(SampleBasedGSIIRL, "_fine_tune", original)
    assert len(calls) == ITERATIONS - 1
    assert not (tmp_path / "out" / CHECKPOINT_DIR).exists()
    for seed in ("0", "1"):
        ours, theirs = (r["methods"]["ma-irl"]["seeds"][seed] for r in (resumed, reference))
        assert "retrained_learner_return" in ours
        assert {k: v for k, v in ours.items() if k != "wall_time"} == \
            {k: v for k, v in theirs.items() if k != "wall_time"}
