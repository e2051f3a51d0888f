"""Parallel backends give exactly the serial numbers; reproduce writes Table 1 and resumes."""

import csv
import io
import json
import os
import subprocess
import sys

import pytest

from gsiirl.cli.reproduce import PAPER_TABLE1, build_table, reproduce
from gsiirl.experiments.parallel import execute_units
from gsiirl.experiments.runner import prepare_run, run_experiment, save_results

OPTIONS = {"nodes": 4, "horizon": 3, "num_trajectories": 50}


def _without_wall_time(tree):
    if isinstance(tree, dict):
        return {k: _without_wall_time(v) for k, v in tree.items() if k != "wall_time"}
    return tree


@pytest.fixture(scope="module")
def serial(tmp_path_factory, float32_mode):
    with float32_mode():  # worker processes run in the library's default float32
        return run_experiment("security", out_dir=tmp_path_factory.mktemp("serial"), methods=["gsiirl", "marl"],
                              seeds=2, iterations=2, options=OPTIONS)


@pytest.mark.parametrize("pin_workers", [None, False])
def test_process_backend_matches_serial(serial, tmp_path, pin_workers):
    """Workers pinned to their own cores (None: the default) or sharing them give the serial numbers."""
    results = run_experiment("security", out_dir=tmp_path, methods=["gsiirl", "marl"], seeds=2, iterations=2,
                             options=OPTIONS, backend="process", workers=2, pin_workers=pin_workers)
    assert _without_wall_time(results["methods"]) == _without_wall_time(serial["methods"])
    assert (tmp_path / "results.json").exists()


def _report_pinned_cores(counter, workers, queue):
    from gsiirl.experiments.parallel import pin_to_cores

    pin_to_cores(counter, workers)
    queue.put(sorted(os.sched_getaffinity(0)))


def _pinned_cores(workers: int) -> list[list[int]]:
    """The cores ``workers`` spawned processes take, in the order they were counted."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    counter, queue = context.Value("i", 0), context.Queue()
    processes = [context.Process(target=_report_pinned_cores, args=(counter, workers, queue)) for _ in range(workers)]
    for process in processes:
        process.start()
    reported = [queue.get(timeout=120) for _ in processes]
    for process in processes:
        process.join(timeout=60)
    assert counter.value == workers
    return sorted(reported)


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS (pinning is a no-op)")
def test_pinned_workers_split_the_cores_between_them():
    cores = sorted(os.sched_getaffinity(0))
    # more workers than cores: one core each, round robin
    many = len(cores) + 1
    assert _pinned_cores(many) == sorted([cores[i % len(cores)]] for i in range(many))
    # one worker: all the cores
    assert _pinned_cores(1) == [cores]
    if len(cores) >= 2:  # two workers: disjoint halves that cover the cores (one core each on two cores)
        halves = _pinned_cores(2)
        assert not set(halves[0]) & set(halves[1]) and len(halves[0]) == len(halves[1]) == len(cores) // 2


def test_experiments_choose_whether_their_workers_are_pinned(monkeypatch):
    from gsiirl.experiments import parallel
    from gsiirl.experiments.runner import load_experiment

    unit = lambda experiment: (experiment, "marl", (0,), 1, {})
    # pinned by default (docs/results.md, session 27: each experiment measured A-B-A, 11-23 % faster)
    assert all(parallel.pins_workers([unit(name)]) for name in ("mpe", "hri", "security"))
    monkeypatch.setattr(load_experiment("security"), "PIN_WORKERS", False, raising=False)  # an opt-out
    assert parallel.pins_workers([unit("hri")]) is True and parallel.pins_workers([unit("security")]) is False
    assert parallel.pins_workers([unit("hri"), unit("security")]) is False and parallel.pins_workers([]) is False

    class Stop(Exception):
        pass

    pinned = []

    def pool(**kwargs):  # the process backend's pool: record whether its workers get a core counter
        pinned.append(kwargs["initargs"][1] is not None)
        raise Stop

    monkeypatch.setattr(parallel, "ProcessPoolExecutor", pool)
    for units, choice in (([unit("hri")], None), ([unit("security")], None), ([unit("hri")], False),
                          ([unit("security")], True)):
        with pytest.raises(Stop):
            next(parallel.execute_units(units, backend="process", workers=2, pin_workers=choice))
    assert pinned == [True, False, False, True]


def test_ray_backend_on_a_local_ray_instance_matches_serial(serial, tmp_path):
    """Ray runs in a child process: ``ray.shutdown()`` leaves about nine of Ray's native threads running
    in its driver, which should not share the test process with the rest of the suite. (The suite's late
    crashes first blamed on them were the process's memory-mapping limit: tests/conftest.py.)"""
    script = ("import json, sys\n"
              "from gsiirl.experiments.runner import run_experiment\n"
              f"run_experiment('security', out_dir={str(tmp_path)!r}, methods=['gsiirl', 'marl'], seeds=2,"
              f" iterations=2, options={OPTIONS!r}, backend='ray', workers=2)\n")
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    on_ray = json.loads((tmp_path / "results.json").read_text())
    on_serial = json.loads(json.dumps(serial["methods"]))  # the same JSON round trip as results.json
    assert _without_wall_time(on_ray["methods"]) == _without_wall_time(on_serial)


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="backend"):
        list(execute_units([], backend="slurm"))


def _fake_results(value):
    final = {"learner_return": {"mean": value, "std": 0.5, "n": 2}, "expert_return": {"mean": -value, "std": 0.25, "n": 2}}
    return {"methods": {m: {"seeds": {}, "final": final} for m in ("gsiirl", "ma-irl", "marl")}}


def test_table1_has_ours_and_the_papers_values():
    markdown, text = build_table({"mpe": _fake_results(1.0), "hri": _fake_results(2.0), "security": _fake_results(3.0)})
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 2 * 3 * 3
    cs_gsiirl = next(r for r in rows if r["player"] == "learner" and r["method"] == "GSIIRL" and r["experiment"] == "CS")
    assert float(cs_gsiirl["mean"]) == 3.0 and float(cs_gsiirl["paper_mean"]) == PAPER_TABLE1["learner"]["gsiirl"]["security"][0]
    assert "3.00 ± 0.50 | -17.38 ± 3.59" in markdown


def test_reproduce_resumes_what_is_on_disk(tmp_path):
    calls = []

    def fake_run(name, *, resume, out, seeds, iters, options, **_):
        calls.append((name, resume))
        out.mkdir(parents=True, exist_ok=True)
        results = prepare_run(name, out_dir=out, seeds=seeds, iterations=iters, options=options, resume=resume)[0]
        save_results(results, out / "results.json")  # a valid (empty) file with this plan's configuration
        return _fake_results(1.0)

    reproduce(tmp_path, quick=True, run=fake_run, echo=lambda *_: None)
    reproduce(tmp_path, quick=True, run=fake_run, echo=lambda *_: None)
    assert calls == [("mpe", False), ("hri", False), ("security", False), ("mpe", True), ("hri", True), ("security", True)]
    assert (tmp_path / "table1.md").exists() and (tmp_path / "table1.csv").exists()


def test_table1_says_whether_each_method_is_within_noise_of_marl():
    results = {name: _fake_results(1.0) for name in ("mpe", "hri", "security")}
    far = {"learner_return": {"mean": 2.2, "std": 0.5, "n": 2}, "expert_return": {"mean": -1.2, "std": 0.25, "n": 2}}
    results["hri"]["methods"]["gsiirl"]["final"] = far  # learner gap 1.2 > 0.5; expert gap 0.2 ≤ 0.25
    markdown, _ = build_table(results)
    row = next(line for line in markdown.splitlines() if line.startswith("| GSIIRL |") and "yes" in line)
    cells = [c.strip() for c in row.strip("|").split("|")][1:]
    # columns: MPE, HRI, CS learner, then MPE, HRI, CS expert
    assert cells == ["yes (+0.00)", "NO (+1.20)", "yes (+0.00)", "yes (+0.00)", "yes (-0.20)", "yes (+0.00)"]


def test_table1_also_gives_the_strict_verdict_against_marls_own_std():
    results = {name: _fake_results(1.0) for name in ("mpe", "hri", "security")}
    # GSIIRL on MPE: a large own std (an outlier seed) makes the lenient verdict pass, the strict one fail.
    results["mpe"]["methods"]["gsiirl"]["final"] = {"learner_return": {"mean": 3.0, "std": 4.0, "n": 2},
                                                    "expert_return": {"mean": -1.1, "std": 0.5, "n": 2}}
    markdown, _ = build_table(results)
    lenient, strict = markdown.split("**Within MARL's own std?**")
    row = lambda text: [c.strip() for c in next(line for line in text.splitlines()
                                                if line.startswith("| GSIIRL |") and "yes" in line).strip("|").split("|")][1:]
    assert row(lenient)[0] == "yes (+2.00)" and row(strict)[0] == "NO (+2.00)"
    assert row(lenient)[3] == "yes (-0.10)" and row(strict)[3] == "yes (-0.10)"  # 0.1 ≤ MARL's 0.25


def test_table1_reward_transfer_section_pairs_seeds_with_marl():
    results = {name: _fake_results(1.0) for name in ("mpe", "hri", "security")}
    assert "Reward transfer" not in build_table(results)[0]  # no retrained metrics, no section
    marl = {"0": {"learner_return": [1.0], "expert_return": [-1.0]}, "1": {"learner_return": [3.0], "expert_return": [-3.0]}}
    hri = results["hri"]["methods"]
    hri["marl"]["seeds"] = marl
    # GSIIRL retrained: learner 0.5 and 2.0 → mean 1.25 ± 0.75; per-seed gaps −0.5, −1.0 → −0.75 ± 0.25;
    # MARL's learner std over the two seeds is 1.0 → |−0.75| ≤ max(0.75, 1.0): yes
    hri["gsiirl"]["seeds"] = {"0": {"retrained_learner_return": [0.5], "retrained_expert_return": [-1.0]},
                              "1": {"retrained_learner_return": [2.0], "retrained_expert_return": [-9.0]}}
    markdown, text = build_table(results)
    section = markdown.split("**Reward transfer**")[1]
    row = next(line for line in section.splitlines() if line.startswith("| GSIIRL |"))
    cells = [c.strip() for c in row.strip("|").split("|")][1:]  # MPE learner, HRI learner, MPE expert, HRI expert
    assert cells[0] == "—" and cells[2] == "—"
    assert cells[1] == "1.25 ± 0.75; paired gap -0.75 ± 0.25, yes"
    # expert: −1, −9 → −5 ± 4; gaps 0, −6 → −3 ± 3; MARL std 1 → |−3| ≤ max(4, 1): yes
    assert cells[3] == "-5.00 ± 4.00; paired gap -3.00 ± 3.00, yes"
    rows = list(csv.DictReader(io.StringIO(text)))
    retrained = [r for r in rows if r["method"] == "GSIIRL retrained"]
    assert [(r["player"], r["experiment"], float(r["mean"])) for r in retrained] == [("learner", "HRI", 1.25),
                                                                                    ("expert", "HRI", -5.0)]


def test_workers_end_when_their_runner_is_killed(tmp_path):
    """A runner killed with SIGKILL must not leave its worker processes computing orphaned units."""
    import os
    import signal
    import time

    script = tmp_path / "runner.py"
    script.write_text(
        "import multiprocessing, os, sys, time\n"
        "from concurrent.futures import ProcessPoolExecutor\n"
        "from gsiirl.experiments.parallel import exit_with_parent\n"
        "if __name__ == '__main__':\n"
        "    context = multiprocessing.get_context('spawn')\n"
        "    pool = ProcessPoolExecutor(1, mp_context=context, initializer=exit_with_parent, initargs=(os.getpid(), 0.1))\n"
        "    print(pool.submit(os.getpid).result(), flush=True)\n"
        "    pool.submit(time.sleep, 120)\n"
        "    time.sleep(120)\n")
    runner = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    worker = int(runner.stdout.readline())
    os.kill(runner.pid, signal.SIGKILL)
    runner.wait()
    def ended(pid):  # gone, or a zombie waiting for a parent (an orphan's new parent may not reap it)
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
        except FileNotFoundError:
            return True

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if ended(worker):
            break
        time.sleep(0.1)
    else:
        os.kill(worker, signal.SIGKILL)
        raise AssertionError("the worker outlived its killed runner by 20 s")


def test_an_interrupt_while_units_are_submitted_stops_the_workers(monkeypatch):
    """Ctrl-C during submission (before every unit is queued) must stop the pool at once, not wait for the
    units already queued to finish (shutdown(wait=True) would)."""
    from concurrent.futures import ProcessPoolExecutor

    from gsiirl.experiments import parallel

    original_submit, submitted, terminated = ProcessPoolExecutor.submit, [], []

    def submit(self, *args, **kwargs):
        if len(submitted) == 1:
            raise KeyboardInterrupt
        submitted.append(1)
        return original_submit(self, *args, **kwargs)

    monkeypatch.setattr(ProcessPoolExecutor, "submit", submit)
    original_terminate = parallel._terminate
    monkeypatch.setattr(parallel, "_terminate", lambda pool: terminated.append(1) or original_terminate(pool))
    units = [("security", "marl", (seed,), 1, {}) for seed in range(3)]
    with pytest.raises(KeyboardInterrupt):
        list(parallel.execute_units(units, backend="process", workers=1))
    assert submitted == [1] and terminated == [1]
