"""Resumable runner: schema, summaries, atomic saves, kill-then-resume equals an uninterrupted run."""

import json
import sys
import types

import numpy as np
import pytest

from gsiirl.experiments import results_file, runner
from gsiirl.experiments.runner import (LOCK_FILE, ResultsFileError, load_results, merge_options, run_experiment,
                                      summarize)


class Killed(Exception):
    pass


def _toy_module(kill_at=None):
    """A deterministic toy experiment; raises Killed when asked to run unit ``kill_at``."""
    module = types.ModuleType("toy_experiment")
    module.DEFAULT_OPTIONS = {"scale": 1.0, "flag": False}

    def make_unit_runner(options):
        def run(method, seed, iterations, progress):
            if (method, seed) == kill_at:
                raise Killed()
            rng = np.random.default_rng([seed, len(method)])
            values = options["scale"] * rng.normal(size=iterations).cumsum()
            for k in range(iterations):
                progress(k)
            if method == "marl":
                return {"learner_return": [values[-1]], "expert_return": [-values[-1]]}
            return {"learner_return": values.tolist(), "expert_return": (-values).tolist(), "nan_metric": [np.nan] * iterations}
        return run

    module.make_unit_runner = make_unit_runner
    return module


@pytest.fixture
def toy(monkeypatch):
    def install(kill_at=None):
        monkeypatch.setitem(sys.modules, "toy_experiment", _toy_module(kill_at))
        monkeypatch.setitem(runner.EXPERIMENTS, "toy", "toy_experiment")
    return install


def test_summarize_by_hand():
    final = summarize({"1": {"x": [0.0, 3.0]}, "0": {"x": [5.0, 1.0], "y": [None]}})
    assert final["x"] == {"mean": 2.0, "std": 1.0, "n": 2}
    assert final["y"] == {"mean": None, "std": None, "n": 0, "not_finite": 1}  # the seed is counted, not hidden


def test_summarize_skips_sample_trajectories():
    final = summarize({"0": {"x": [1.0], "trajectory_robot_x": [0.0, 0.1, 0.2]}})
    assert set(final) == {"x"}


def test_merge_options_coerces_and_rejects():
    merged = merge_options({"a": 1, "b": 0.5, "c": "x", "d": None, "e": False}, {"a": "3", "b": "2", "d": "null", "e": "true"})
    assert merged == {"a": 3, "b": 2.0, "c": "x", "d": None, "e": True}
    with pytest.raises(ValueError, match="unknown option"):
        merge_options({"a": 1}, {"z": "1"})
    with pytest.raises(ValueError, match="option a: expected an integer"):
        merge_options({"a": 1}, {"a": "1.5"})


@pytest.mark.parametrize("override,message", [
    ({"a": "null"}, "option a: expected a value like its default 1"),        # was a TypeError traceback in a unit
    ({"b": "Infinity"}, "option b: expected a finite value"),                 # was run, then unsavable results
    ({"b": "NaN"}, "option b: expected a finite value"),
    ({"d": "-Infinity"}, "option d: expected a finite value"),               # a null default takes no inf either
    ({"g": "5"}, "option g: expected a list of 2 values"),                   # was accepted and broadcast
    ({"g": "[1]"}, "option g: expected a list of 2 values"),
    ({"g": '["a", 0]'}, r"option g\[0\]: expected a number"),
    ({"g": "[NaN, 0]"}, "option g: expected a finite value"),
])
def test_merge_options_refuses_null_non_finite_and_misshaped_values(override, message):
    defaults = {"a": 1, "b": 0.5, "d": None, "g": [0.0, 0.5]}
    with pytest.raises(ValueError, match=message):
        merge_options(defaults, override)
    assert merge_options(defaults, {"g": "[1, 2]", "d": "null"})["g"] == [1.0, 2.0]


def test_kill_then_resume_equals_uninterrupted(toy, tmp_path):
    toy()
    full = run_experiment("toy", out_dir=tmp_path / "full", seeds=3, iterations=4)
    toy(kill_at=("ma-irl", 1))
    with pytest.raises(Killed):
        run_experiment("toy", out_dir=tmp_path / "part", seeds=3, iterations=4)
    partial = load_results(tmp_path / "part" / "results.json")
    assert sorted(partial["methods"]["ma-irl"]["seeds"]) == ["0"]  # saved after every finished unit
    assert not [p for p in (tmp_path / "part").iterdir() if p.name not in ("results.json", LOCK_FILE)]  # no temp files
    toy()
    stale = tmp_path / "part" / ".results.json.k1ll3d.tmp"  # what a SIGKILL mid-write would have left
    stale.write_text('{"half": ')
    ticks = []
    resumed = run_experiment("toy", out_dir=tmp_path / "part", seeds=3, iterations=4, resume=True, progress=ticks.append)
    assert not stale.exists()  # cleared under the lock, before any unit
    assert sum(ticks) == 3 * 3 * 4
    assert resumed["methods"] == full["methods"]
    on_disk = json.loads((tmp_path / "part" / "results.json").read_text())
    assert on_disk["methods"] == json.loads((tmp_path / "full" / "results.json").read_text())["methods"]
    final = full["methods"]["gsiirl"]["final"]["learner_return"]
    lasts = [full["methods"]["gsiirl"]["seeds"][s]["learner_return"][-1] for s in "012"]
    assert final["mean"] == pytest.approx(np.mean(lasts)) and final["std"] == pytest.approx(np.std(lasts))
    assert full["methods"]["gsiirl"]["seeds"]["0"]["nan_metric"][0] is None
    assert full["schema_version"] == 1 and "jax" in full["versions"]


def test_refuses_overwrite_mismatch_and_corruption(toy, tmp_path):
    toy()
    run_experiment("toy", out_dir=tmp_path, methods=["marl"], seeds=1, iterations=2)
    with pytest.raises(ValueError, match="already exists"):
        run_experiment("toy", out_dir=tmp_path, methods=["marl"], seeds=1, iterations=2)
    with pytest.raises(ResultsFileError, match="different configuration"):
        run_experiment("toy", out_dir=tmp_path, methods=["marl"], seeds=1, iterations=3, resume=True)
    path = tmp_path / "results.json"
    path.write_text(path.read_text()[:40])
    with pytest.raises(ResultsFileError, match="not valid JSON"):
        run_experiment("toy", out_dir=tmp_path, methods=["marl"], seeds=1, iterations=2, resume=True)
    path.write_text(json.dumps({"schema_version": 1, "experiment": "toy", "config": {}, "versions": {},
                                "methods": {"marl": {"seeds": {"0": {"learner_return": ["x"]}}}}}))
    with pytest.raises(ResultsFileError, match="list of numbers"):
        load_results(path)


def _toy_group_module(calls, kill_at=None):
    """A toy experiment with seed groups: a seed's numbers depend on its group (like float32 rounding
    of a vmapped batch), so storing a seed computed in the wrong group would show."""
    module = types.ModuleType("toy_group_experiment")
    module.DEFAULT_OPTIONS = {"scale": 1.0, "seed_batch": 3}
    module.OPTION_VALUES_BEFORE_ADDED = {"seed_batch": 1}

    def make_group_runner(options):
        def run(method, seeds, iterations, progress):
            calls.append((method, tuple(seeds)))
            if (method, seeds[0]) == kill_at:
                raise Killed()
            for k in range(iterations):
                progress(k)
            return [{"learner_return": [options["scale"] * seed + 0.001 * len(seeds) + k for k in range(iterations)]}
                    for seed in seeds]
        return run

    module.make_group_runner = make_group_runner
    module.make_unit_runner = lambda options: None  # never used when groups exist
    return module


def test_seed_groups_are_fixed_computed_whole_and_resumable(monkeypatch, tmp_path):
    calls = []

    def install(kill_at=None):
        monkeypatch.setitem(sys.modules, "toy_group_experiment", _toy_group_module(calls, kill_at))
        monkeypatch.setitem(runner.EXPERIMENTS, "toy_groups", "toy_group_experiment")

    install()
    ticks = []
    results = run_experiment("toy_groups", out_dir=tmp_path / "a", methods=["gsiirl"], seeds=4, iterations=2,
                             progress=ticks.append)
    assert calls == [("gsiirl", (0, 1, 2)), ("gsiirl", (3, 4, 5))]  # groups [0,3) and [3,6), whole
    assert sorted(results["methods"]["gsiirl"]["seeds"], key=int) == ["0", "1", "2", "3"]  # only requested seeds
    assert sum(ticks) == 4 * 2
    assert results["methods"]["gsiirl"]["seeds"]["3"]["learner_return"] == [3.003, 4.003]
    # growing --seeds computes only the missing seeds' group and stores them with the same numbers
    calls.clear()
    grown = run_experiment("toy_groups", out_dir=tmp_path / "a", methods=["gsiirl"], seeds=6, iterations=2, resume=True)
    assert calls == [("gsiirl", (3, 4, 5))]
    assert grown["methods"]["gsiirl"]["seeds"]["3"] == results["methods"]["gsiirl"]["seeds"]["3"]
    # a killed run keeps every finished group; the resumed run recomputes only the rest
    install(kill_at=("gsiirl", 3))
    with pytest.raises(Killed):
        run_experiment("toy_groups", out_dir=tmp_path / "b", methods=["gsiirl"], seeds=6, iterations=2)
    assert sorted(load_results(tmp_path / "b" / "results.json")["methods"]["gsiirl"]["seeds"]) == ["0", "1", "2"]
    install()
    calls.clear()
    resumed = run_experiment("toy_groups", out_dir=tmp_path / "b", methods=["gsiirl"], seeds=6, iterations=2,
                             resume=True, backend="serial")
    assert calls == [("gsiirl", (3, 4, 5))] and resumed["methods"] == grown["methods"]
    # a file written before the option existed was made with seed_batch = 1: it resumes only with 1
    path = tmp_path / "b" / "results.json"
    old = json.loads(path.read_text())
    del old["config"]["options"]["seed_batch"]
    path.write_text(json.dumps(old))
    with pytest.raises(ResultsFileError, match="option seed_batch: 1 in the file, 3 now"):
        run_experiment("toy_groups", out_dir=tmp_path / "b", methods=["gsiirl"], seeds=6, iterations=2, resume=True)
    calls.clear()
    run_experiment("toy_groups", out_dir=tmp_path / "b", methods=["gsiirl"], seeds=7, iterations=2, resume=True,
                   options={"seed_batch": 1})
    assert calls == [("gsiirl", (6,))]


@pytest.mark.parametrize("kwargs,field", [({"methods": ["bogus"]}, "method"), ({"seeds": 0}, "seeds"),
                                          ({"iterations": -1}, "iterations"), ({"options": {"nope": 1}}, "nope")])
def test_bad_arguments(toy, tmp_path, kwargs, field):
    toy()
    with pytest.raises(ValueError, match=field):
        run_experiment("toy", out_dir=tmp_path, **{"seeds": 1, "iterations": 1, **kwargs})


@pytest.mark.parametrize("kwargs,field", [
    ({"workers": 0, "backend": "process"}, "workers: expected a positive integer"),
    ({"workers": True, "backend": "process"}, "workers: expected a positive integer"),
    ({"workers": 2}, "workers: only used with backend"),  # the serial backend has no workers
    ({"address": "host:6379", "backend": "process"}, "address: only used with backend 'ray'"),
    ({"pin_workers": True}, "pin_workers: only used with backend 'process'"),
    ({"pin_workers": False, "backend": "ray"}, "pin_workers: only used with backend 'process'"),
    ({"pin_workers": "yes", "backend": "process"}, "pin_workers: expected True, False or None"),
    ({"resume": True, "force": True}, "resume, force"),
])
def test_contradictory_run_arguments_are_refused_before_any_work(toy, tmp_path, kwargs, field):
    toy(kill_at=("gsiirl", 0))  # any unit that ran would raise Killed instead of the expected error
    with pytest.raises(ValueError, match=field):
        run_experiment("toy", out_dir=tmp_path, **{"seeds": 1, "iterations": 1, **kwargs})


def test_an_output_path_that_is_a_file_is_refused_before_any_work(toy, tmp_path):
    toy(kill_at=("gsiirl", 0))
    (tmp_path / "taken").write_text("not a directory")
    with pytest.raises(ValueError, match="out: .*taken exists and is not a directory"):
        run_experiment("toy", out_dir=tmp_path / "taken", seeds=1, iterations=1)
    assert (tmp_path / "taken").read_text() == "not a directory"


def test_a_zero_seed_batch_is_refused_by_name(monkeypatch, tmp_path):
    module = types.ModuleType("toy_groups_zero")
    module.DEFAULT_OPTIONS = {"seed_batch": 2}
    module.make_group_runner = lambda options: pytest.fail("no unit may run")
    monkeypatch.setitem(sys.modules, "toy_groups_zero", module)
    monkeypatch.setitem(runner.EXPERIMENTS, "toy_groups_zero", "toy_groups_zero")
    with pytest.raises(ValueError, match="seed_batch: expected a positive integer"):
        run_experiment("toy_groups_zero", out_dir=tmp_path, seeds=1, iterations=1, options={"seed_batch": 0})


def test_summary_text_by_hand():
    results = {"methods": {
        "marl": {"seeds": {"0": {"learner_return": [1.0], "expert_return": [-1.0], "collision_rate": [0.0]},
                           "1": {"learner_return": [3.0], "expert_return": [-3.0], "collision_rate": [0.5]}}},
        "gsiirl": {"seeds": {"0": {"learner_return": [0.0, 0.5], "expert_return": [0.0, -2.0]},
                             "1": {"learner_return": [0.0, 2.0], "expert_return": [0.0, -2.0]}}}}}
    for block in results["methods"].values():
        block["final"] = summarize(block["seeds"])
    lines = results_file.summary_text(results, labels={"learner_return": "robot return"},
                                extra_metrics=("collision_rate",)).splitlines()
    assert "robot return" in lines[0] and "gap to MARL (robot return)" in lines[0] and "collision rate" in lines[0]
    marl, ours = lines[1].split(), lines[2].split()
    assert marl[:4] == ["marl", "2.000", "±", "1.000"] and "0.250" in marl  # collision: mean of 0 and 0.5
    # GSIIRL: learner 1.250 ± 0.750; paired learner gaps 0.5 - 1 and 2 - 3 -> -0.750 ± 0.250; expert gaps -1, +1
    assert ours[:4] == ["gsiirl", "1.250", "±", "0.750"] and "n/a" in ours
    assert ours[-6:] == ["-0.750", "±", "0.250", "0.000", "±", "1.000"]
    assert len(lines) == 3  # no interaction metrics, no interaction row


def test_summary_text_adds_the_interaction_row_with_its_own_gaps():
    from gsiirl.algorithms.sample_based import INTERACTION_PREFIX

    assert results_file.INTERACTION_PREFIX == INTERACTION_PREFIX
    seeds = {"0": {"learner_return": [1.0], "expert_return": [-1.0]}, "1": {"learner_return": [3.0], "expert_return": [-3.0]}}
    ours = {"0": {"learner_return": [0.5], "expert_return": [-2.0], "interaction_learner_return": [1.5],
                  "interaction_expert_return": [-1.0]},
            "1": {"learner_return": [2.0], "expert_return": [-2.0], "interaction_learner_return": [2.5],
                  "interaction_expert_return": [-4.0]}}
    results = {"methods": {"marl": {"seeds": seeds}, "gsiirl": {"seeds": ours}}}
    for block in results["methods"].values():
        block["final"] = summarize(block["seeds"])
    lines = results_file.summary_text(results).splitlines()
    assert [line.split()[0] for line in lines[1:4]] == ["marl", "gsiirl", "gsiirl"]
    row = lines[3].split()
    # interaction learner 2.000 ± 0.500; gaps +0.5 and -0.5 -> 0.000 ± 0.500; expert gaps 0 and -1 -> -0.5 ± 0.5
    assert row[:6] == ["gsiirl", "interaction", "2.000", "±", "0.500", "-2.500"]
    assert row[-6:] == ["0.000", "±", "0.500", "-0.500", "±", "0.500"]
    assert len(lines) == 5 and "TRUE reward" in lines[4]  # the legend of the interaction row


def test_mean_std_text_one_seed_shows_the_mean_alone():
    assert results_file.mean_std_text(-1.23456, 0.0, 1) == "-1.235"
    assert results_file.mean_std_text(-1.23456, 0.5, 2) == "-1.235 ± 0.500"
    assert results_file.mean_std_text(2.0, 0.25, 3, digits=2) == "2.00 ± 0.25"
    assert results_file.mean_std_text(None, None, 0) == "n/a"


def test_security_marl_and_adversarial_resume(tmp_path, float32_mode):
    """The real security experiment (cheap methods, tiny graph): kill after one unit, resume, compare.

    Runs in float32 mode as the CLI does (conftest enables x64, under which the library's trajectory
    sampler currently mixes int64/int32 state indices for sparse games).
    """
    with float32_mode():
        _security_resume(tmp_path)


def _security_resume(tmp_path):
    options = {"nodes": 4, "horizon": 4, "ma_irl_variant": "adversarial", "num_trajectories": 100}
    full = run_experiment("security", out_dir=tmp_path / "full", methods=["marl", "ma-irl"], seeds=2, iterations=1,
                          options=options)
    calls = []

    def kill_after_first_unit(n):
        calls.append(n)
        if len(calls) == 2:
            raise Killed()

    with pytest.raises(Killed):
        run_experiment("security", out_dir=tmp_path / "part", methods=["marl", "ma-irl"], seeds=2, iterations=1,
                       options=options, progress=kill_after_first_unit)
    resumed = run_experiment("security", out_dir=tmp_path / "part", methods=["marl", "ma-irl"], seeds=2,
                             iterations=1, options=options, resume=True)
    assert resumed["methods"] == full["methods"]
    assert set(full["methods"]["ma-irl"]["seeds"]["0"]) >= {"learner_return", "expert_return", "epic_distance"}
