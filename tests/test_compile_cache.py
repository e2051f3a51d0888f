"""``--compile-cache``: worker processes write compiled programs there, later runs load them and give the
same numbers; a bad directory is a one-line error; workers start on different methods."""

import json
import os
import subprocess
import sys

from gsiirl.experiments.parallel import start_order
from gsiirl.io.compile_cache import runtime_fingerprint

RUN = [sys.executable, "-c", "from gsiirl.cli.main import app; app()", "run", "security", "--method", "marl",
       "--seeds", "2", "--iters", "2", "--option", "nodes=4", "--option", "horizon=3", "--no-figure",
       "--no-progress"]


def _clean_environment():
    # the test process may itself run with a cache; the subprocesses must only see the flag's
    return {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")}


def _returns(path):
    seeds = json.loads(path.read_text())["methods"]["marl"]["seeds"]
    return {seed: (metrics["learner_return"], metrics["expert_return"]) for seed, metrics in seeds.items()}


def test_worker_processes_fill_the_cache_and_a_later_run_reproduces_the_numbers(tmp_path):
    cache = tmp_path / "cache"
    first = subprocess.run(RUN + ["--out", str(tmp_path / "a"), "--backend", "process", "--workers", "1",
                                  "--compile-cache", str(cache)],
                           capture_output=True, text=True, timeout=600, env=_clean_environment())
    assert first.returncode == 0, first.stderr
    entries = [entry.name for entry in (cache / runtime_fingerprint()).iterdir()]
    # the runner process solves no game: the equilibrium solver's program came from the worker process
    assert any(name.startswith("jit_soft_nash") for name in entries), entries
    second = subprocess.run(RUN + ["--out", str(tmp_path / "b"), "--compile-cache", str(cache)],
                            capture_output=True, text=True, timeout=600, env=_clean_environment())
    assert second.returncode == 0, second.stderr
    assert _returns(tmp_path / "b" / "results.json") == _returns(tmp_path / "a" / "results.json")


def test_unusable_cache_directory_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    completed = subprocess.run(RUN + ["--out", str(tmp_path / "out"), "--compile-cache", str(blocker / "cache")],
                               capture_output=True, text=True, timeout=120, env=_clean_environment())
    assert completed.returncode == 2
    assert completed.stderr.startswith("gsiirl: error: compile_cache:") and "Traceback" not in completed.stderr
    assert not (tmp_path / "out" / "results.json").exists()


def test_fingerprint_names_the_runtime():
    import jax

    assert runtime_fingerprint().startswith(f"jax-{jax.__version__}_jaxlib-")
    assert runtime_fingerprint() == runtime_fingerprint()


def test_start_order_puts_one_unit_of_every_method_first():
    units = [("x", method, (seed,), 3, {}) for method in ("gsiirl", "ma-irl", "marl") for seed in range(3)]
    ordered = start_order(units)
    assert [unit[1] for unit in ordered[:3]] == ["gsiirl", "ma-irl", "marl"]
    assert sorted(ordered, key=units.index) == units  # a permutation
    rest = [unit for unit in units if unit not in ordered[:3]]
    assert ordered[3:] == rest  # otherwise in the original order
    assert start_order([]) == []
