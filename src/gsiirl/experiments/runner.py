"""Resumable methods × seeds experiment runner, writing the results file of
:mod:`gsiirl.experiments.results_file` (``OUT/results.json``, schema version 1).

The file is rewritten atomically (temp file + ``os.replace``) after every finished unit: one method on
one seed, or on one fixed group of seeds that an experiment vmaps together (its option ``seed_batch`` =
B: groups [g·B, (g+1)·B), always computed whole; only the requested seeds are stored).
``resume=True`` reloads it, checks that it was made with the same configuration, skips finished seeds
and runs the rest; every unit is a pure function of (method, seeds, config), so a killed-then-resumed
run ends with exactly the numbers of an uninterrupted one. Options an experiment added later are read
from an older file as the module's ``OPTION_VALUES_BEFORE_ADDED`` (the value that file was made with, or a
function of the file's stored options that returns it).
One run writes a directory at a time: ``run_experiment`` holds an exclusive lock on ``OUT/.gsiirl.lock``.
"""

from __future__ import annotations

import importlib
import json
import math
import platform
import shutil
from contextlib import closing
from pathlib import Path
from typing import Callable

from gsiirl.experiments import EXPERIMENTS
from gsiirl.experiments.results_file import (METHODS, RESULTS_FILE, SCHEMA_VERSION, ResultsFileError, clean_metrics,
                                             load_results, save_results, summarize)
from gsiirl.experiments.sample_units import check_seed_batch, seed_group
from gsiirl.io.atomic import check_output_directory
from gsiirl.io.versions import package_version
from gsiirl.validation import is_integer



def library_versions() -> dict[str, str]:
    """Versions of the libraries the numbers depend on."""
    return {"python": platform.python_version(),
            **{package: package_version(package) for package in ("gsiirl", "jax", "jaxlib", "numpy", "scipy", "optax")}}


def load_experiment(name: str):
    """Import the experiment module registered under ``name`` (ValueError if unknown or broken)."""
    if name not in EXPERIMENTS:
        raise ValueError(f"experiment: expected one of {sorted(EXPERIMENTS)}, got {name!r}")
    try:
        return importlib.import_module(EXPERIMENTS[name])
    except ImportError as error:
        raise ValueError(f"experiment: {name!r} is not available ({error})") from None


def _reject_non_finite(key: str, parsed, value) -> None:
    """ValueError naming ``key`` if ``parsed`` holds a NaN or infinity: no option means anything with one, and
    the results file (JSON without NaN/Infinity) could not store it after the units had run."""
    if isinstance(parsed, float) and not math.isfinite(parsed):
        raise ValueError(f"option {key}: expected a finite value, got {value!r}")
    if isinstance(parsed, (list, tuple)):
        for item in parsed:
            _reject_non_finite(key, item, value)
    if isinstance(parsed, dict):
        for item in parsed.values():
            _reject_non_finite(key, item, value)


def _coerce(key: str, value, default):
    """Convert a ``--option`` value (usually a string) to the type of its default. ``null`` is accepted only
    where the default is null; a list default takes a list of the same length (each item coerced to its
    default's type); NaN and infinities are refused."""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
    else:
        parsed = value
    _reject_non_finite(key, parsed, value)
    if default is None:
        return parsed
    if parsed is None:
        raise ValueError(f"option {key}: expected a value like its default {default!r}, got {value!r}")
    if isinstance(default, bool):
        if isinstance(parsed, bool):
            return parsed
        if isinstance(parsed, str) and parsed.lower() in ("true", "false", "yes", "no"):
            return parsed.lower() in ("true", "yes")
        raise ValueError(f"option {key}: expected true or false, got {value!r}")
    if isinstance(default, int):
        if isinstance(parsed, int) and not isinstance(parsed, bool):
            return parsed
        if isinstance(parsed, float) and parsed.is_integer():
            return int(parsed)
        raise ValueError(f"option {key}: expected an integer, got {value!r}")
    if isinstance(default, float):
        if isinstance(parsed, (int, float)) and not isinstance(parsed, bool):
            return float(parsed)
        raise ValueError(f"option {key}: expected a number, got {value!r}")
    if isinstance(default, str):
        return str(parsed)
    if isinstance(default, (list, tuple)):
        if not isinstance(parsed, (list, tuple)) or len(parsed) != len(default):
            raise ValueError(f"option {key}: expected a list of {len(default)} values like {list(default)!r}, "
                             f"got {value!r}")
        return [_coerce(f"{key}[{index}]", item, item_default)
                for index, (item, item_default) in enumerate(zip(parsed, default))]
    return parsed


def merge_options(defaults: dict, overrides: dict | None) -> dict:
    """Defaults updated by ``overrides`` (keys must be known; values coerced to the defaults' types)."""
    merged = dict(defaults)
    for key, value in (overrides or {}).items():
        if key not in defaults:
            raise ValueError(f"option {key}: unknown option; expected one of {sorted(defaults)}")
        merged[key] = _coerce(key, value, defaults[key])
    return merged


def freeze_options(options: dict, exclude: tuple[str, ...] = ()) -> tuple:
    """A hashable form of ``options`` (lists become tuples; ``exclude`` keys dropped), so that experiment
    modules can cache one compiled back-end per option set: every unit a worker process runs with the
    same options then reuses the compiled functions instead of recompiling them."""
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items() if k not in exclude))


def _differences(stored: dict, requested: dict) -> str:
    """The fields (and options) in which two run configurations differ, for the resume error."""
    stored, requested = _comparable(stored), _comparable(requested)
    names = [f"{key}: {stored.get(key)!r} in the file, {requested.get(key)!r} now"
             for key in sorted(set(stored) | set(requested))
             if key != "options" and stored.get(key) != requested.get(key)]
    stored_options, requested_options = stored.get("options") or {}, requested.get("options") or {}
    names += [f"option {key}: {stored_options.get(key)!r} in the file, {requested_options.get(key)!r} now"
              for key in sorted(set(stored_options) | set(requested_options))
              if stored_options.get(key) != requested_options.get(key)]
    return "; ".join(names) or "unknown difference"


def _comparable(config: dict) -> dict:
    """The part of the config that must match for a resume (methods / seeds may grow)."""
    return {key: value for key, value in config.items() if key not in ("methods", "seeds")}


def run_experiment(
    experiment: str,
    *,
    out_dir: Path,
    methods: tuple[str, ...] | list[str] = METHODS,
    seeds: int = 10,
    iterations: int = 50,
    options: dict | None = None,
    resume: bool = False,
    force: bool = False,
    progress: Callable[[int], None] | None = None,
    describe: Callable[[str], None] | None = None,
    backend: str = "serial",
    workers: int | None = None,
    address: str | None = None,
    pin_workers: bool | None = None,
) -> dict:
    """Run ``methods`` × seeds ``0..seeds-1`` of one experiment; returns the results dict (also on disk).

    Args:
        experiment: a key of ``gsiirl.experiments.EXPERIMENTS``.
        out_dir: directory of ``results.json``.
        methods: subset of ("gsiirl", "ma-irl", "marl").
        seeds: number of seeds (seeds are 0 .. seeds-1).
        iterations: outer iterations per (method, seed).
        options: experiment options overriding the module's DEFAULT_OPTIONS (strings are parsed).
        resume: continue ``out_dir/results.json`` (must have been made with the same config).
        force: overwrite an existing results file instead of refusing.
        progress: called with the number of newly finished iterations (for a progress bar).
        describe: called with a short description of the unit being run.
        backend: where units run — "serial" (this process), "process" (spawned worker processes) or
            "ray" (a local Ray instance, or the cluster at ``address``); see ``gsiirl.experiments.parallel``.
            Every unit is saved the moment it finishes, whatever the backend.
        workers: parallel workers for "process" / a local "ray" (default 2).
        pin_workers: "process" only: give each worker process its own share of the cores (True; one core
            each when workers = cores), let them share all cores (False), or None: True unless the
            experiment's module sets ``PIN_WORKERS = False`` (``gsiirl.experiments.parallel``). Same numbers.
    """
    from gsiirl.experiments.parallel import BACKENDS

    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {list(BACKENDS)}, got {backend!r}")
    if workers is not None:
        if not is_integer(workers) or workers < 1:
            raise ValueError(f"workers: expected a positive integer, got {workers!r}")
        if backend == "serial":
            raise ValueError("workers: only used with backend 'process' or 'ray' (the serial backend runs in this process)")
    if address is not None and backend != "ray":
        raise ValueError(f"address: only used with backend 'ray', got backend {backend!r}")
    if pin_workers is not None:
        if not isinstance(pin_workers, bool):
            raise ValueError(f"pin_workers: expected True, False or None, got {pin_workers!r}")
        if backend != "process":
            raise ValueError(f"pin_workers: only used with backend 'process', got backend {backend!r}")
    prepare_run(experiment, out_dir=out_dir, methods=methods, seeds=seeds, iterations=iterations, options=options,
                resume=resume, force=force)  # every check before the directory is touched
    with exclusive_directory(out_dir):
        # re-read under the lock: another run may have finished between the check and the lock
        results, module, merged, path = prepare_run(experiment, out_dir=out_dir, methods=methods, seeds=seeds,
                                                    iterations=iterations, options=options, resume=resume,
                                                    force=force)
        if force:  # start afresh: no unit continues an earlier run's checkpoint
            from gsiirl.experiments.parallel import CHECKPOINT_DIR

            shutil.rmtree(Path(out_dir) / CHECKPOINT_DIR, ignore_errors=True)
        return _execute(results, module, merged, path, methods=list(dict.fromkeys(methods)), seeds=seeds,
                        iterations=iterations, progress=progress, describe=describe, backend=backend,
                        workers=workers, address=address, pin_workers=pin_workers)


LOCK_FILE = ".gsiirl.lock"


class exclusive_directory:
    """Context manager: create ``out_dir`` and hold an exclusive lock on ``out_dir/.gsiirl.lock``, so a
    second run on the same directory is refused instead of overwriting this run's finished units."""

    def __init__(self, out_dir) -> None:
        self.out_dir = Path(out_dir)

    def __enter__(self) -> Path:
        import fcntl

        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.handle = open(self.out_dir / LOCK_FILE, "a")
        except OSError as error:
            raise ValueError(f"out: cannot write to {self.out_dir} ({error.strerror or error})") from None
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.handle.close()
            raise ValueError(f"out: {self.out_dir} is in use by another gsiirl run (it holds "
                             f"{self.out_dir / LOCK_FILE}); wait for it to finish or choose another --out") from None
        from gsiirl.io.atomic import remove_stale_temporaries

        remove_stale_temporaries(self.out_dir)  # a killed run's half-written files; no one else writes here now
        return self.out_dir

    def __exit__(self, *exc) -> None:
        self.handle.close()  # closing the file releases the lock


VERSION_PACKAGES = ("gsiirl", "jax", "jaxlib", "numpy", "scipy", "optax")


def prepare_run(experiment: str, *, out_dir: Path, methods=METHODS, seeds: int = 10, iterations: int = 50,
                options: dict | None = None, resume: bool = False, force: bool = False):
    """Validate a run and load what it continues, writing nothing: ``(results, module, options, path)``.

    Raises ValueError / ResultsFileError naming the problem: bad arguments, an existing file without
    ``resume``/``force``, or a file made with another experiment, configuration or library versions."""
    if resume and force:
        raise ValueError("resume, force: expected at most one (resume continues DIR/results.json, force overwrites it)")
    check_output_directory(out_dir)
    methods = list(dict.fromkeys(methods))
    for method in methods:
        if method not in METHODS:
            raise ValueError(f"method: expected one of {list(METHODS)}, got {method!r}")
    if not methods:
        raise ValueError("method: expected at least one method")
    for name, value in (("seeds", seeds), ("iterations", iterations)):
        if not is_integer(value) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    module = load_experiment(experiment)
    merged = merge_options(module.DEFAULT_OPTIONS, options)
    if hasattr(module, "check_options"):  # option values, before a unit (or a worker process) runs
        module.check_options(merged)
    config = {"experiment": experiment, "methods": methods, "seeds": int(seeds),
              "iterations": int(iterations), "options": merged}
    path = Path(out_dir) / RESULTS_FILE

    if path.exists() and resume:
        results = load_results(path)
        if results["experiment"] != experiment:
            raise ResultsFileError(f"{path}: holds the {results['experiment']} experiment, not {experiment} "
                                   "(use another --out)")
        stored_options = results["config"].get("options")
        if isinstance(stored_options, dict):
            for key, value in getattr(module, "OPTION_VALUES_BEFORE_ADDED", {}).items():
                # a callable derives the old value from the file's other options (e.g. initial_radius = radius)
                stored_options.setdefault(key, value(stored_options) if callable(value) else value)
        if _comparable(results["config"]) != _comparable(config):
            raise ResultsFileError(f"{path}: was made with a different configuration "
                                   f"({_differences(results['config'], config)}); --resume needs the same "
                                   "experiment, --iters and options (use another --out to start afresh)")
        current = library_versions()
        changed = [f"{name} {results['versions'].get(name)} in the file, {current[name]} now"
                   for name in VERSION_PACKAGES if results["versions"].get(name, current[name]) != current[name]]
        if changed:
            raise ResultsFileError(f"{path}: was computed with other library versions ({'; '.join(changed)}); "
                                   "resuming would mix numbers from both (use another --out to start afresh)")
        results["config"] = {**config, "methods": list(dict.fromkeys(results["config"].get("methods", []) + methods)),
                             "seeds": max(int(results["config"].get("seeds", 0)), int(seeds))}
    elif path.exists() and not force:
        raise ValueError(f"out: {path} already exists; pass --resume to continue it or --force to overwrite it")
    else:
        results = {"schema_version": SCHEMA_VERSION, "experiment": experiment, "config": config,
                   "versions": library_versions(), "methods": {}}
    return results, module, merged, path


def _execute(results: dict, module, merged: dict, path: Path, *, methods: list[str], seeds: int, iterations: int,
             progress, describe, backend: str, workers, address, pin_workers=None) -> dict:
    """Run the units ``results`` does not hold yet, saving the file after every finished one. Units that
    support it keep a checkpoint in ``OUT/.checkpoints`` while they run (deleted once stored)."""
    from gsiirl.experiments.parallel import CHECKPOINT_DIR, checkpoint_arguments, unit_checkpoint

    experiment = results["experiment"]
    checkpoint_dir = str(path.parent / CHECKPOINT_DIR)

    def wanted(method: str, group: tuple[int, ...]) -> list[int]:
        """The seeds of a unit's group that this run asked for and that are not stored yet."""
        stored = results["methods"][method]["seeds"]
        return [seed for seed in group if seed < int(seeds) and str(seed) not in stored]

    def store(unit, per_seed: list[dict]) -> None:
        _, method, group, _, _ = unit
        block = results["methods"][method]
        for seed in wanted(method, group):
            block["seeds"][str(seed)] = clean_metrics(per_seed[group.index(seed)])
        block["seeds"] = {key: block["seeds"][key] for key in sorted(block["seeds"], key=int)}
        block["final"] = summarize(block["seeds"])
        save_results(results, path)
        unit_checkpoint(checkpoint_dir, unit).delete()  # stored: its checkpoint is no longer needed

    batch = check_seed_batch(merged) if hasattr(module, "make_group_runner") and "seed_batch" in merged else 1
    pending = []
    for method in methods:
        block = results["methods"].setdefault(method, {"seeds": {}, "final": {}})
        missing = [seed for seed in range(int(seeds)) if str(seed) not in block["seeds"]]
        if progress is not None and len(missing) < int(seeds):
            progress(int(iterations) * (int(seeds) - len(missing)))
        groups = dict.fromkeys(seed_group(seed, batch) for seed in missing)
        pending.extend((experiment, method, group, int(iterations), merged) for group in groups)

    if backend != "serial":
        from gsiirl.experiments.parallel import execute_units

        if describe is not None and pending:
            describe(f"{experiment}: {len(pending)} units on {backend}")
        # closing(): an interrupt while a result is being stored (outside the generator) still stops the
        # workers and releases the pool now, not whenever the generator is collected
        with closing(execute_units(pending, backend=backend, workers=workers, address=address,
                                   checkpoint_dir=checkpoint_dir, pin_workers=pin_workers)) as finished:
            for unit, per_seed in finished:
                count = len(wanted(unit[1], unit[2]))
                store(unit, per_seed)
                if progress is not None:
                    progress(int(iterations) * count)
        _remove_if_empty(checkpoint_dir)
        return results

    from gsiirl.experiments.parallel import make_runner

    run_group = make_runner(module, merged)
    for unit in pending:
        _, method, group, _, _ = unit
        count = len(wanted(method, group))
        if describe is not None:
            describe(f"{experiment} {method} seed{'s' if len(group) > 1 else ''} "
                     + (f"{group[0]}–{group[-1]}" if len(group) > 1 else f"{group[0]}"))
        done = [0]

        def on_iteration(iteration: int, done=done, count=count) -> None:
            finished = min(int(iteration) + 1, int(iterations))
            if progress is not None and finished > done[0]:
                progress((finished - done[0]) * count)
            done[0] = max(done[0], finished)

        per_seed = run_group(method, group, int(iterations), on_iteration,
                             **checkpoint_arguments(run_group, checkpoint_dir, unit))
        if progress is not None and done[0] < iterations:
            progress((int(iterations) - done[0]) * count)
        store(unit, per_seed)
    _remove_if_empty(checkpoint_dir)
    return results


def _remove_if_empty(directory) -> None:
    """Remove ``directory`` (the checkpoints' folder) once every unit is stored and it holds nothing."""
    try:
        Path(directory).rmdir()
    except OSError:  # absent, or it still holds something (then it is not ours to delete)
        pass
