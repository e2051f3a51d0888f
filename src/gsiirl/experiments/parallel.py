"""Where the units of an experiment run: in this process, in worker processes, or on Ray.

A unit is one method on one *seed group* (a single seed, or the fixed group of seeds an experiment
vmaps together, option ``seed_batch``). Every unit is a pure function of (experiment, method, seeds,
iterations, options), so the backends give identical numbers; only wall time differs. Results are
handed back as units finish, so the runner can save each one atomically the moment it completes
(nothing finished is lost on a crash). A unit whose runner accepts ``checkpoint`` (all three experiments,
but security's MARL and adversarial MA-IRL) also saves its own state after every outer iteration in
``CHECKPOINT_DIR`` (:func:`unit_checkpoint`), so an interrupted unit continues where it stopped instead of
starting again. Worker processes are pinned to their own cores by default (:func:`pin_to_cores`).
"""

from __future__ import annotations

import inspect
import multiprocessing
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Callable, Iterable, Iterator

BACKENDS = ("serial", "process", "ray")

Unit = tuple[str, str, tuple[int, ...], int, dict]  # (experiment, method, seeds, iterations, options)
GroupRunner = Callable[[str, tuple[int, ...], int, Callable[[int], None]], list[dict]]
CHECKPOINT_DIR = ".checkpoints"  # OUT/.checkpoints/<unit>.json|.npz: the state of units still running


def unit_checkpoint(checkpoint_dir, unit: Unit):
    """The checkpoint (:class:`gsiirl.algorithms.run_state.RunState`) of ``unit`` in ``checkpoint_dir``:
    ``<method>-seeds-<first>-<last>``, identified by the experiment and its options (plus what the
    algorithm adds); a checkpoint of other options is discarded, not continued."""
    from gsiirl.algorithms.run_state import RunState

    experiment, method, seeds, _, options = unit
    return RunState(Path(checkpoint_dir) / f"{method}-seeds-{seeds[0]}-{seeds[-1]}",
                    {"experiment": experiment, "options": options}, discard_mismatched=True)


def checkpoint_arguments(runner: GroupRunner, checkpoint_dir, unit: Unit) -> dict:
    """``{"checkpoint": ...}`` for a runner that accepts one (and a ``checkpoint_dir``), else ``{}``."""
    if checkpoint_dir is None or "checkpoint" not in inspect.signature(runner).parameters:
        return {}
    return {"checkpoint": unit_checkpoint(checkpoint_dir, unit)}


def make_runner(module, options: dict) -> GroupRunner:
    """``run(method, seeds, iterations, progress) -> [metrics per seed]`` for an experiment module: its
    ``make_group_runner`` if it has one (seeds vmapped together), else its per-seed unit runner in a loop."""
    if hasattr(module, "make_group_runner"):
        return module.make_group_runner(options)
    single = module.make_unit_runner(options)
    if "checkpoint" not in inspect.signature(single).parameters:
        return lambda method, seeds, iterations, progress: [single(method, seed, iterations, progress)
                                                            for seed in seeds]

    def run(method: str, seeds: tuple[int, ...], iterations: int, progress, checkpoint=None) -> list[dict]:
        """Each seed with its own checkpoint: the unit's (one seed), or its part ``seed-<s>``."""
        def own(seed: int):
            if checkpoint is None or len(seeds) == 1:
                return checkpoint
            from gsiirl.algorithms.run_state import as_run_state

            return as_run_state(checkpoint).part(f"seed-{int(seed)}")

        return [single(method, seed, iterations, progress, checkpoint=own(seed)) for seed in seeds]

    return run


def run_unit(unit: Unit, progress: Callable[[int], None] | None = None,
             checkpoint_dir: str | None = None) -> list[dict[str, list[float]]]:
    """Run one unit in the current process (importable by worker processes and Ray): one metrics dict
    per seed of the unit's group. ``progress(k)`` is called after outer iteration k; with
    ``checkpoint_dir`` the unit continues from, and keeps, its checkpoint there (:func:`unit_checkpoint`)."""
    from gsiirl.experiments.runner import load_experiment

    experiment, method, seeds, iterations, options = unit
    runner = make_runner(load_experiment(experiment), options)
    return runner(method, tuple(seeds), iterations, progress or (lambda _: None),
                  **checkpoint_arguments(runner, checkpoint_dir, unit))


def exit_with_parent(parent_pid: int, poll_seconds: float = 1.0) -> None:
    """Worker initializer: end this worker process once ``parent_pid`` is no longer its parent.

    A killed runner (SIGKILL, or SIGTERM to the runner alone) would otherwise leave its workers finishing
    units whose results nobody receives, holding the CPU for minutes (a unit can run for a quarter hour)."""
    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def pin_to_cores(counter, workers: int) -> None:
    """Worker initializer part: give this worker process its own share of the cores it may use, before
    JAX starts, so that XLA's threads all run there: the cores are split into ``workers`` equal blocks
    (at least one core each; round robin when there are more workers than cores) and the ``counter``-th
    worker started takes block ``counter``.

    Two workers on two cores then stop competing for both cores with their thread pools: on the small
    matrices of these experiments a second XLA thread gains nothing, and two unpinned workers lose ≈ 30 %
    of an MPE MADDPG train call to each other (docs/results.md, session 27). No-op where the OS has no
    CPU affinity."""
    if not hasattr(os, "sched_setaffinity"):
        return
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    cores = sorted(os.sched_getaffinity(0))
    share = max(1, len(cores) // max(1, int(workers)))
    first = (index * share) % len(cores)
    os.sched_setaffinity(0, set(cores[first:first + share]))


def _start_worker(parent_pid: int, counter=None, workers: int = 1) -> None:
    """Process-pool initializer: take a share of the cores if ``counter`` is given (first: threads started
    later inherit the affinity), then watch the parent (:func:`exit_with_parent`)."""
    if counter is not None:
        pin_to_cores(counter, workers)
    exit_with_parent(parent_pid)


def pins_workers(units: list[Unit]) -> bool:
    """The default of ``pin_workers``: pinned, unless an experiment module of ``units`` opts out with
    ``PIN_WORKERS = False`` (none of the three does: pinning made each of them 11–23 % faster with two
    workers on two cores and gave the same numbers; docs/results.md, session 27)."""
    from gsiirl.experiments.runner import load_experiment

    return bool(units) and all(getattr(load_experiment(unit[0]), "PIN_WORKERS", True) for unit in units)


def start_order(units: list[Unit]) -> list[Unit]:
    """``units`` with the first unit of every method moved to the front (otherwise in order).

    Parallel workers then start on different methods, so each method's programs are compiled by one
    worker while the others run something else; with a compilation cache (``--compile-cache``) the
    later workers load those programs instead of compiling the same ones at the same time. Results do
    not depend on the order (every unit is a pure function of its arguments)."""
    firsts: dict[str, int] = {}
    for index, unit in enumerate(units):
        firsts.setdefault(unit[1], index)
    chosen = set(firsts.values())
    return [units[i] for i in sorted(chosen)] + [unit for i, unit in enumerate(units) if i not in chosen]


def execute_units(units: list[Unit], *, backend: str = "serial", workers: int | None = None,
                  address: str | None = None,
                  serial_runner: Callable[[Unit], list[dict]] | None = None,
                  checkpoint_dir: str | None = None,
                  pin_workers: bool | None = None) -> Iterator[tuple[Unit, list[dict]]]:
    """Yield (unit, [metrics per seed of the unit]) as units finish. ``serial_runner`` lets the serial
    backend report progress. ``checkpoint_dir``: where units keep their checkpoints (:func:`run_unit`;
    not on a remote Ray cluster, whose workers may not share this machine's disk). ``pin_workers``
    (process backend): give each worker process its own share of the cores (:func:`pin_to_cores`); None = the
    experiments' choice (:func:`pins_workers`). Numbers do not depend on it, only wall time."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {list(BACKENDS)}, got {backend!r}")
    if backend == "serial":
        for unit in units:
            yield unit, (serial_runner(unit) if serial_runner else run_unit(unit, None, checkpoint_dir))
        return
    if backend == "process":
        units = start_order(units)
        context = multiprocessing.get_context("spawn")  # JAX is not fork-safe
        size = workers or 2
        pin = pins_workers(units) if pin_workers is None else bool(pin_workers)
        pool = ProcessPoolExecutor(max_workers=size, mp_context=context, initializer=_start_worker,
                                   initargs=(os.getpid(), context.Value("i", 0) if pin else None, size))
        pending, finished = {}, False
        try:
            for unit in units:
                pending[pool.submit(run_unit, unit, None, checkpoint_dir)] = unit
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield pending.pop(future), future.result()
            finished = True
        finally:
            if not finished:  # interrupted (also while submitting), failed or abandoned: stop the workers
                _terminate(pool)  # now, not after their units
            else:
                pool.shutdown(wait=True)
        return
    yield from _execute_on_ray(start_order(units), workers=workers, address=address,
                               checkpoint_dir=None if address else checkpoint_dir)


def _terminate(pool: ProcessPoolExecutor) -> None:
    """Kill a pool's workers and drop its queue. ``shutdown(wait=True)`` (what ``with`` does) would
    block until every running unit finished — up to a unit's full length after a Ctrl-C — and the
    runner, already unwinding, would then discard those results anyway."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)


def _execute_on_ray(units: Iterable[Unit], *, workers: int | None, address: str | None, checkpoint_dir=None):
    try:
        import ray
    except ImportError:
        raise ValueError("backend: 'ray' needs the optional extra: pip install 'gsiirl[ray]'") from None
    started_here = not ray.is_initialized()
    if started_here:
        from gsiirl.io.compile_cache import cache_environment

        kwargs = {"address": address} if address else {"num_cpus": workers or 2, "include_dashboard": False}
        if cache_environment() and not address:  # --compile-cache: the local Ray workers use it too (not a
            # cluster's: the directory's name fingerprints this machine's CPU, not theirs)
            kwargs["runtime_env"] = {"env_vars": cache_environment()}
        ray.init(ignore_reinit_error=True, log_to_driver=False, **kwargs)
    try:
        remote = ray.remote(run_unit)
        pending = {remote.remote(unit, None, checkpoint_dir): unit for unit in units}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for reference in done:
                yield pending.pop(reference), ray.get(reference)
    finally:
        if started_here:
            ray.shutdown()
