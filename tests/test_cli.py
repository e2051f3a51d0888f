"""CLI: bad arguments and corrupted results give one line on stderr and exit code 2, never a traceback."""

import json
import subprocess
import sys
import types

import numpy as np
import pytest

from gsiirl.cli.main import main
from gsiirl.experiments import results_file, runner


def _run(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.fixture
def toy(monkeypatch):
    module = types.ModuleType("toy_cli_experiment")
    module.DEFAULT_OPTIONS = {"scale": 1.0}

    def make_unit_runner(options):
        def run(method, seed, iterations, progress):
            for k in range(iterations):
                progress(k)
            return {"learner_return": [options["scale"] * (seed + k) for k in range(iterations)],
                    "expert_return": [float(seed)] * iterations}
        return run

    module.make_unit_runner = make_unit_runner
    module.summary = lambda results: "SUMMARY " + " ".join(sorted(results["methods"]))
    monkeypatch.setitem(sys.modules, "toy_cli_experiment", module)
    monkeypatch.setitem(runner.EXPERIMENTS, "toy", "toy_cli_experiment")


@pytest.mark.parametrize("argv,needle", [
    (["run", "security", "--seeds", "abc"], "--seeds"),
    (["run", "security", "--method", "bogus", "--out", "{tmp}"], "method"),
    (["run", "nowhere", "--out", "{tmp}"], "experiment"),
    (["run", "security", "--option", "nodes", "--out", "{tmp}"], "key=value"),
    (["run", "security", "--option", "colour=3", "--out", "{tmp}"], "colour"),
    (["run", "security", "--nodes", "1", "--out", "{tmp}"], "num_nodes"),
    (["run", "security", "--marl-solver", "magic", "--out", "{tmp}"], "marl_solver"),
    (["run", "security", "--seeds", "0", "--out", "{tmp}"], "seeds"),
    (["run", "security", "--frobnicate"], "frobnicate"),
    (["run", "security", "--nodes", "4", "--option", "nodes=3", "--out", "{tmp}"], "--nodes, --option nodes"),
])
def test_bad_arguments_are_one_line(argv, needle, capsys, tmp_path):
    code, _, err = _run([a.replace("{tmp}", str(tmp_path / "out")) for a in argv], capsys)
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("gsiirl: error:") and needle in lines[0]


def test_run_resume_and_corrupted_file(toy, capsys, tmp_path):
    out = tmp_path / "run"
    code, stdout, _ = _run(["run", "toy", "--seeds", "2", "--iters", "3", "--out", str(out), "--no-progress"], capsys)
    assert code == 0 and "SUMMARY gsiirl ma-irl marl" in stdout
    results = json.loads((out / "results.json").read_text())
    assert results["methods"]["gsiirl"]["seeds"]["1"]["learner_return"] == [1.0, 2.0, 3.0]
    assert results["methods"]["marl"]["final"]["expert_return"] == {"mean": 0.5, "std": 0.5, "n": 2}
    code, _, err = _run(["run", "toy", "--seeds", "2", "--iters", "3", "--out", str(out)], capsys)
    assert code == 2 and "--resume" in err
    code, _, _ = _run(["run", "toy", "--seeds", "3", "--iters", "3", "--out", str(out), "--resume", "--no-progress"], capsys)
    assert code == 0 and "2" in json.loads((out / "results.json").read_text())["methods"]["ma-irl"]["seeds"]
    (out / "results.json").write_text('{"schema_version": 1, "experiment": ')
    code, _, err = _run(["run", "toy", "--seeds", "2", "--iters", "3", "--out", str(out), "--resume"], capsys)
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1 and "corrupted" in err


def test_progress_bar_is_shown(toy, capsys, tmp_path):
    code, _, err = _run(["run", "toy", "--method", "marl", "--seeds", "2", "--iters", "5", "--out", str(tmp_path)], capsys)
    assert code == 0 and "10/10" in err


def test_help_exits_zero(capsys):
    code, stdout, err = _run(["run", "--help"], capsys)
    assert code == 0 and "--seeds" in stdout and "Traceback" not in err


def test_experiment_flags_of_another_experiment_name_the_flag(capsys, tmp_path):
    code, _, err = _run(["run", "hri", "--nodes", "5", "--out", str(tmp_path)], capsys)
    assert code == 2 and "--nodes: not an option of the hri experiment" in err and not list(tmp_path.iterdir())


def test_version_is_printed(capsys):
    import gsiirl

    code, stdout, _ = _run(["--version"], capsys)
    assert code == 0 and stdout.strip() == f"gsiirl {gsiirl.__version__}"


def test_interrupt_is_one_line_and_resumable(toy, monkeypatch, capsys, tmp_path):
    module = sys.modules["toy_cli_experiment"]
    finished = module.make_unit_runner

    def make_unit_runner(options):
        run = finished(options)

        def interrupted(method, seed, iterations, progress):
            if seed == 1:
                raise KeyboardInterrupt
            return run(method, seed, iterations, progress)
        return interrupted

    monkeypatch.setattr(module, "make_unit_runner", make_unit_runner)
    out = tmp_path / "run"
    code, _, err = _run(["run", "toy", "--method", "marl", "--seeds", "2", "--iters", "2", "--out", str(out),
                         "--no-progress"], capsys)
    assert code == 130 and "continue with --resume" in err and "Traceback" not in err
    assert list(json.loads((out / "results.json").read_text())["methods"]["marl"]["seeds"]) == ["0"]


def test_unexpected_error_propagates_unchanged(toy, monkeypatch, tmp_path):
    """A bug inside a unit surfaces as itself (the CLI's exception filter must not fail on the way)."""
    def make_unit_runner(options):
        def run(method, seed, iterations, progress):
            raise RuntimeError("boom inside a unit")
        return run

    monkeypatch.setattr(sys.modules["toy_cli_experiment"], "make_unit_runner", make_unit_runner)
    with pytest.raises(RuntimeError, match="boom inside a unit"):
        main(["run", "toy", "--method", "marl", "--seeds", "1", "--iters", "1", "--out", str(tmp_path),
              "--no-progress"])


def test_console_script_error_is_one_line(tmp_path):
    completed = subprocess.run([sys.executable, "-c", "from gsiirl.cli.main import app; app()", "run", "security",
                                "--iters", "many"], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    assert completed.stderr.strip().startswith("gsiirl: error:") and "Traceback" not in completed.stderr


def test_security_figure_from_results(tmp_path):
    from gsiirl.experiments.security import make_figure, summary

    rng = np.random.default_rng(0)
    results = {"config": {"options": {}}, "methods": {
        "gsiirl": {"seeds": {str(s): {"learner_return": rng.normal(size=5).tolist(),
                                      "expert_return": rng.normal(size=5).tolist()} for s in range(3)}},
        "marl": {"seeds": {str(s): {"learner_return": [-1.0 - s], "expert_return": [1.0 + s]} for s in range(3)}}}}
    for block in results["methods"].values():
        block["final"] = results_file.summarize(block["seeds"])
    paths = make_figure(results, tmp_path)
    assert paths[0].exists() and paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = summary(results)
    assert "-2.000 ± 0.816" in table  # MARL learner: mean of -1, -2, -3 and population std


def test_demo_writes_figure_and_table(capsys, tmp_path):
    """`gsiirl demo` end to end (one seed, two iterations): the figure, the table with a MARL row, and the
    single-seed cells printed as a mean alone."""
    code, out, err = _run(["demo", "--out", str(tmp_path / "demo"), "--seeds", "1", "--iters", "2",
                           "--no-progress"], capsys)
    assert code == 0, err
    table = (tmp_path / "demo" / "demo_table.md").read_text()
    assert (tmp_path / "demo" / "demo.png").stat().st_size > 10_000
    rows = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ") and "---" not in line}
    assert set(rows) == {"method", "MARL (true rewards)", "GSIIRL", "MA-IRL"}
    assert "±" not in rows["GSIIRL"] and "over 1 seed;" in table and "MA-IRL" in out
    code, _, err = _run(["demo", "--out", str(tmp_path / "bad"), "--seeds", "0"], capsys)
    assert code == 2 and "seeds: expected an integer >= 1, got 0" in err


def test_console_script_interrupt_exits_130_with_its_message(tmp_path):
    """The console entry point ends an interrupted run at once (``os._exit``) after printing its message."""
    script = ("import os, signal, sys, threading\n"
              "from gsiirl.cli.main import console\n"
              "threading.Timer(4.0, lambda: os.kill(os.getpid(), signal.SIGINT)).start()\n"
              f"sys.argv = ['gsiirl', 'run', 'security', '--method', 'gsiirl', '--seeds', '1', '--iters', '100000',"
              f" '--out', {str(tmp_path / 'run')!r}, '--no-progress', '--no-figure']\n"
              "console()\n")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert completed.returncode == 130, completed.stderr[-2000:]
    assert completed.stderr.strip().endswith("gsiirl: interrupted; continue with --resume")
