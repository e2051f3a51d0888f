"""The runner and reproduce against what a user's folder can hold: a second run on it, stale or
hand-edited results, other library versions, diverged seeds, an unwritable --out, an interrupt with the
process backend."""

import json
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

from gsiirl.cli.main import main
from gsiirl.cli.reproduce import build_table, reproduce
from gsiirl.experiments import results_file, runner
from gsiirl.experiments.results_file import summary_text
from gsiirl.experiments.runner import ResultsFileError, exclusive_directory, load_results, run_experiment


@pytest.fixture
def toy(monkeypatch):
    module = types.ModuleType("toy_robust_experiment")
    module.DEFAULT_OPTIONS = {"scale": 1.0}

    def make_unit_runner(options):
        def run(method, seed, iterations, progress):
            value = np.nan if (method, seed) == ("gsiirl", 1) and options["scale"] < 0 else float(seed)
            return {"learner_return": [value] * (1 if method == "marl" else iterations),
                    "expert_return": [-float(seed)] * (1 if method == "marl" else iterations)}
        return run

    module.make_unit_runner = make_unit_runner
    monkeypatch.setitem(sys.modules, "toy_robust_experiment", module)
    monkeypatch.setitem(runner.EXPERIMENTS, "toy", "toy_robust_experiment")


def test_a_second_run_on_a_folder_in_use_is_refused(toy, tmp_path):
    with exclusive_directory(tmp_path / "out"):
        with pytest.raises(ValueError, match=r"out: .* is in use by another gsiirl run"):
            run_experiment("toy", out_dir=tmp_path / "out", seeds=1, iterations=2)
    run_experiment("toy", out_dir=tmp_path / "out", seeds=1, iterations=2)  # released: runs


def test_an_unwritable_out_is_named_before_any_unit_runs(toy, tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    ran = []
    monkeypatch.setattr(runner, "_execute", lambda *a, **k: ran.append(1))
    with pytest.raises(ValueError, match=r"out: cannot write to .*file/sub"):
        run_experiment("toy", out_dir=blocker / "sub", seeds=1, iterations=2)
    assert not ran


def test_final_is_recomputed_from_the_seeds_and_damaged_fields_are_named(toy, tmp_path):
    run_experiment("toy", out_dir=tmp_path, seeds=2, iterations=3)
    path = tmp_path / "results.json"
    document = json.loads(path.read_text())
    document["methods"]["marl"]["final"] = "garbage"
    document["methods"]["gsiirl"]["seeds"]["0"]["learner_return"] = [7.0, 8.0, 9.0]
    path.write_text(json.dumps(document))
    loaded = load_results(path)
    assert loaded["methods"]["gsiirl"]["final"]["learner_return"]["mean"] == 5.0  # (9 + 1) / 2, not the stored 0.5
    assert loaded["methods"]["marl"]["final"]["learner_return"]["n"] == 2
    for field, value, message in (("options", "x", "config.options is not an object"),
                                  ("seeds", "many", "config.seeds is not an integer")):
        damaged = json.loads(path.read_text())
        damaged["config"][field] = value
        path.write_text(json.dumps(damaged))
        with pytest.raises(ResultsFileError, match=message):
            load_results(path)
        path.write_text(json.dumps(document))


def test_resume_refuses_other_library_versions_and_other_experiments(toy, tmp_path):
    run_experiment("toy", out_dir=tmp_path, seeds=1, iterations=2)
    path = tmp_path / "results.json"
    document = json.loads(path.read_text())
    document["versions"]["jax"] = "0.0.1"
    path.write_text(json.dumps(document))
    with pytest.raises(ResultsFileError, match=r"other library versions \(jax 0\.0\.1 in the file, .* now\)"):
        run_experiment("toy", out_dir=tmp_path, seeds=2, iterations=2, resume=True)
    document["experiment"] = "security"
    path.write_text(json.dumps(document))
    with pytest.raises(ResultsFileError, match=r"holds the security experiment, not toy \(use another --out\)$"):
        run_experiment("toy", out_dir=tmp_path, seeds=2, iterations=2, resume=True)


def test_a_diverged_seed_is_said_not_silently_averaged_away(toy, tmp_path):
    results = run_experiment("toy", out_dir=tmp_path, seeds=2, iterations=2, options={"scale": -1.0})
    final = results["methods"]["gsiirl"]["final"]["learner_return"]
    assert final == {"mean": 0.0, "std": 0.0, "n": 1, "not_finite": 1}
    row = next(line for line in summary_text(results).splitlines() if line.startswith("gsiirl"))
    assert "0.000 [1 of 2 seeds not finite]" in row
    table = {"security": results}
    markdown, csv_text = build_table(table)
    assert "0.00 (n=1) [1 seed not finite]" in markdown
    assert "n,not_finite,seeds" in csv_text.splitlines()[0]


def _quick_results(tmp_path, run_calls):
    def fake_run(name, *, resume, out, seeds, iters, options, **_):
        run_calls.append(name)
        return run_experiment(name, out_dir=out, seeds=seeds, iterations=iters, options=options, resume=resume,
                              methods=("marl",))
    return fake_run


def test_reproduce_checks_every_folder_before_running_and_tables_everything_in_out(tmp_path, monkeypatch):
    # units replaced by constants: this test is about which folders are checked, run and tabled
    monkeypatch.setattr(runner, "_execute", lambda results, *a, **k: _store_constant(results, *a, **k))
    calls = []
    reproduce(tmp_path, quick=True, run=_quick_results(tmp_path, calls), echo=lambda *_: None)
    assert calls == ["mpe", "hri", "security"]
    # Only security again: the table still shows MPE and HRI from their folders.
    calls.clear()
    reproduce(tmp_path, quick=True, experiments=("security", "security"), run=_quick_results(tmp_path, calls),
              echo=lambda *_: None)
    assert calls == ["security"]  # de-duplicated
    marl_row = next(line for line in (tmp_path / "table1.md").read_text().splitlines() if line.startswith("| MARL |"))
    assert "—" not in marl_row.split("|")[2] and "—" not in marl_row.split("|")[4]  # MPE and HRI ours cells
    # A full-protocol reproduce into the quick folder is refused before anything runs, in reproduce's terms.
    # (security's folder is removed, so without the up-front check the full security run would start first)
    import shutil

    shutil.rmtree(tmp_path / "security")
    calls.clear()
    with pytest.raises(ResultsFileError, match=r"hri/results.json: was made with a different configuration "
                                               r"\(iterations: 4 in the file, 100 now; .*was it made with --quick\?"):
        reproduce(tmp_path, quick=False, experiments=("security", "hri"), run=_quick_results(tmp_path, calls),
                  echo=lambda *_: None)
    assert calls == []


def test_reproduce_refuses_a_damaged_or_foreign_file_of_an_experiment_it_does_not_run_before_running(
        tmp_path, monkeypatch):
    """The table reads every experiment's file in OUT, also those this call does not run: a damaged one is
    refused before any unit runs (not after), and one holding another experiment's results is refused
    instead of being tabled in the wrong column."""
    monkeypatch.setattr(runner, "_execute", lambda results, *a, **k: _store_constant(results, *a, **k))
    calls = []
    (tmp_path / "hri").mkdir()
    (tmp_path / "hri" / "results.json").write_text("{ truncated")
    with pytest.raises(ResultsFileError, match=r"hri/results.json: corrupted"):
        reproduce(tmp_path, quick=True, experiments=("security",), run=_quick_results(tmp_path, calls),
                  echo=lambda *_: None)
    assert calls == []
    (tmp_path / "hri" / "results.json").unlink()
    reproduce(tmp_path, quick=True, experiments=("security",), run=_quick_results(tmp_path, calls),
              echo=lambda *_: None)
    (tmp_path / "hri" / "results.json").write_bytes((tmp_path / "security" / "results.json").read_bytes())
    calls.clear()
    with pytest.raises(ResultsFileError, match=r"hri/results.json: holds the security experiment, not hri"):
        reproduce(tmp_path, quick=True, experiments=("security",), run=_quick_results(tmp_path, calls),
                  echo=lambda *_: None)
    assert calls == []


def test_reproduce_without_reward_transfer_turns_off_only_the_continuous_retraining(tmp_path, monkeypatch):
    """``--no-reward-transfer`` runs MPE and HRI with ``retrain_evaluation`` off (security has no such
    option); a folder made the other way is refused before anything runs, naming the flag."""
    monkeypatch.setattr(runner, "_execute", lambda results, *a, **k: _store_constant(results, *a, **k))
    options_seen = {}

    def fake_run(name, *, resume, out, seeds, iters, options, **_):
        options_seen[name] = dict(options)
        return run_experiment(name, out_dir=out, seeds=seeds, iterations=iters, options=options, resume=resume,
                              methods=("marl",))

    reproduce(tmp_path, quick=True, run=fake_run, echo=lambda *_: None, reward_transfer=False)
    assert options_seen["mpe"] == {"warmup_cycles": 40, "retrain_evaluation": False}
    assert options_seen["hri"] == {"warmup_cycles": 20, "seed_batch": 2, "retrain_evaluation": False}
    assert options_seen["security"] == {}
    stored = load_results(tmp_path / "hri" / "results.json")
    assert stored["config"]["options"]["retrain_evaluation"] is False
    # re-run the same way: resumes; the other way: refused up front, in reproduce's terms
    options_seen.clear()
    reproduce(tmp_path, quick=True, run=fake_run, echo=lambda *_: None, reward_transfer=False)
    assert set(options_seen) == {"mpe", "hri", "security"}
    options_seen.clear()
    with pytest.raises(ResultsFileError, match=r"mpe/results.json: .*option retrain_evaluation: False in the file, "
                                               r"True now.*was it made with --no-reward-transfer\?"):
        reproduce(tmp_path, quick=True, run=fake_run, echo=lambda *_: None)
    assert options_seen == {}


def test_the_cli_passes_the_reward_transfer_flag(tmp_path, monkeypatch):
    import gsiirl.cli.reproduce as reproduce_module

    seen = []
    monkeypatch.setattr(reproduce_module, "reproduce", lambda out, **kwargs: seen.append(kwargs["reward_transfer"]))
    for flags, expected in (([], True), (["--no-reward-transfer"], False), (["--reward-transfer"], True)):
        with pytest.raises(SystemExit) as exit_info:
            main(["reproduce", "--quick", "--out", str(tmp_path), "--no-progress", *flags])
        assert exit_info.value.code in (0, None) and seen.pop() is expected


def _store_constant(results, module, merged, path, *, methods, seeds, iterations, **_):
    for method in methods:
        block = results["methods"].setdefault(method, {"seeds": {}, "final": {}})
        for seed in range(seeds):
            block["seeds"][str(seed)] = {"learner_return": [1.0 + seed], "expert_return": [-1.0]}
        block["final"] = results_file.summarize(block["seeds"])
    results_file.save_results(results, path)
    return results


def test_the_cli_names_an_unwritable_file_in_one_line(toy, tmp_path, capsys, monkeypatch):
    def refuse(*_, **__):
        raise IsADirectoryError(21, "Is a directory", str(tmp_path / "results.json"))

    monkeypatch.setattr(runner, "save_results", refuse)
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "toy", "--seeds", "1", "--iters", "1", "--out", str(tmp_path), "--no-progress", "--no-figure"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "Traceback" not in err
    assert err.strip() == f"gsiirl: error: cannot write {tmp_path / 'results.json'} (Is a directory)"


def test_an_interrupt_stops_process_workers_at_once(tmp_path):
    """SIGINT-like KeyboardInterrupt while two long units run in worker processes: the workers are
    terminated, not waited for (their units would take hours). The timeout is a hang guard, not a speed
    assertion."""
    script = textwrap.dedent('''
        import signal
        from gsiirl.experiments.parallel import execute_units
        from gsiirl.experiments.runner import load_experiment, merge_options
        options = merge_options(load_experiment("security").DEFAULT_OPTIONS, {})
        units = [("security", "gsiirl", (seed,), 1_000_000, options) for seed in (0, 1)]
        def interrupt(*_):
            raise KeyboardInterrupt
        signal.signal(signal.SIGALRM, interrupt)
        signal.alarm(10)
        try:
            for _ in execute_units(units, backend="process", workers=2):
                pass
        except KeyboardInterrupt:
            print("interrupted", flush=True)
    ''')
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert finished.stdout.strip() == "interrupted", finished.stderr[-2000:]


@pytest.mark.parametrize("option, message", [("qlearning_episodes=0", "option qlearning_episodes: expected a positive"),
                                             ("graph_seed=1.5", "option graph_seed: expected a non-negative integer")])
def test_security_options_are_checked_before_any_unit_on_every_backend(option, message, tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(runner, "_execute", lambda *a, **k: ran.append(1))
    key, value = option.split("=")
    with pytest.raises(ValueError, match=message):
        run_experiment("security", out_dir=tmp_path, seeds=1, iterations=1, options={key: value}, backend="process")
    assert not ran and not (tmp_path / "results.json").exists()


@pytest.mark.parametrize("option, message", [("learning_rate=-1", "option learning_rate: expected a finite number >= 0"),
                                             ("finetune_cycles=0", "option finetune_cycles: expected a positive"),
                                             ("seed_batch=0", "seed_batch: expected a positive integer")])
def test_hri_options_are_checked_before_any_unit(option, message, tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(runner, "_execute", lambda *a, **k: ran.append(1))
    key, value = option.split("=")
    with pytest.raises(ValueError, match=message):
        run_experiment("hri", out_dir=tmp_path, seeds=1, iterations=1, options={key: value}, backend="process")
    assert not ran
