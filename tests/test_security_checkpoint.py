"""`gsiirl run security`: a GSIIRL / MA-IRL unit interrupted mid-run continues from its checkpoint in
OUT/.checkpoints (``fit(checkpoint=...)``), computing only the unfinished iterations, and ends with the
uninterrupted run's numbers; a stored unit leaves no checkpoint (nor folder) behind."""

import json

import pytest

from gsiirl.algorithms import gsiirl as gsiirl_module
from gsiirl.experiments.parallel import CHECKPOINT_DIR, make_runner
from gsiirl.experiments.runner import load_experiment, merge_options, run_experiment

SMALL = {"nodes": 5, "edges": 6, "horizon": 4, "num_trajectories": 20}
ITERATIONS = 3


class Interrupted(Exception):
    pass


def _count_iterations(monkeypatch, fail_at: int | None = None) -> list:
    """Count the outer iterations ``fit`` computes (one ``iteration_metrics`` call each); raise Interrupted
    in call number ``fail_at`` (1-based)."""
    original, calls = gsiirl_module.iteration_metrics, []

    def counted(*args, **kwargs):
        calls.append(1)
        if len(calls) == fail_at:
            raise Interrupted
        return original(*args, **kwargs)

    monkeypatch.setattr(gsiirl_module, "iteration_metrics", counted)
    return calls


@pytest.mark.parametrize("method", ["gsiirl", "ma-irl"])
def test_an_interrupted_security_unit_continues_from_its_checkpoint(tmp_path, monkeypatch, method):
    def run(out):
        return run_experiment("security", out_dir=out, methods=[method], seeds=1, iterations=ITERATIONS,
                              options=SMALL)

    reference = run(tmp_path / "reference")
    assert not (tmp_path / "reference" / CHECKPOINT_DIR).exists()
    _count_iterations(monkeypatch, fail_at=3)  # iterations 0 and 1 finish, 2 is interrupted
    with pytest.raises(Interrupted):
        run(tmp_path / "out")
    saved = tmp_path / "out" / CHECKPOINT_DIR / f"{method}-seeds-0-0.json"
    document = json.loads(saved.read_text())
    assert document["config"]["completed_iterations"] == 2
    assert document["config"]["caller_identity"]["experiment"] == "security"
    calls = _count_iterations(monkeypatch)
    resumed = run(tmp_path / "out")
    assert len(calls) == 1
    assert not (tmp_path / "out" / CHECKPOINT_DIR).exists()
    ours, theirs = (r["methods"][method]["seeds"]["0"] for r in (resumed, reference))
    assert {k: v for k, v in ours.items() if k != "wall_time"} == {k: v for k, v in theirs.items() if k != "wall_time"}


def test_a_checkpoint_of_other_options_is_discarded_not_continued(tmp_path, monkeypatch):
    _count_iterations(monkeypatch, fail_at=2)
    with pytest.raises(Interrupted):
        run_experiment("security", out_dir=tmp_path, methods=["gsiirl"], seeds=1, iterations=ITERATIONS,
                       options=SMALL)
    calls = _count_iterations(monkeypatch)
    # a checkpoint written under other options (edited here: a results folder holds one set of options) is
    # deleted and the unit starts afresh instead of continuing it or failing
    stale = tmp_path / CHECKPOINT_DIR / "gsiirl-seeds-0-0.json"
    document = json.loads(stale.read_text())
    document["config"]["caller_identity"]["options"]["num_trajectories"] = 99
    stale.write_text(json.dumps(document))
    run_experiment("security", out_dir=tmp_path, methods=["gsiirl"], seeds=1, iterations=ITERATIONS, options=SMALL)
    assert len(calls) == ITERATIONS and not (tmp_path / CHECKPOINT_DIR).exists()


def test_a_group_of_seeds_keeps_one_checkpoint_part_per_seed(tmp_path):
    from gsiirl.algorithms.run_state import RunState

    module = load_experiment("security")
    runner = make_runner(module, merge_options(module.DEFAULT_OPTIONS, SMALL))
    store = RunState(tmp_path / "gsiirl-seeds-0-1", {"experiment": "security"})
    first = runner("gsiirl", (0, 1), 2, lambda k: None, checkpoint=store)
    assert sorted(p.name for p in tmp_path.glob("*.json")) == ["gsiirl-seeds-0-1.seed-0.json",
                                                                "gsiirl-seeds-0-1.seed-1.json"]
    again = runner("gsiirl", (0, 1), 2, lambda k: None, checkpoint=store)  # finished: read back
    assert again == first and first[0] != first[1]
    store.delete()
    assert not any(tmp_path.iterdir())
