"""The ``gsiirl`` command line (typer).

    gsiirl run EXPERIMENT [--method gsiirl|ma-irl|marl ...] [--seeds N] [--iters K] [--out DIR] [--resume]
                          [--hypergradient spsa|exact|finite_difference] [--nodes N] [--marl-solver S]
                          [--option key=value ...] [--force] [--no-figure] [--compile-cache DIR]

Every user error (bad arguments, unknown experiment or option, corrupted results file) is printed as a
single line ``gsiirl: error: ...`` on stderr with exit code 2 — never a traceback. An interrupted run
(Ctrl-C) exits with 130 and can be continued with ``--resume``.

The work is done by :func:`execute_run`, which other commands (``demo``, ``reproduce``) can call.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

try:  # typer >= 0.20 vendors its own copy of click
    from typer._click import exceptions as click_exceptions
except ImportError:  # pragma: no cover - older typer uses the click package
    from click import exceptions as click_exceptions

from gsiirl.experiments.results_file import METHODS, ResultsFileError
from gsiirl.experiments.runner import load_experiment, run_experiment

EXIT_USAGE = 2
BACKEND_HELP = ("serial (one process, per-iteration progress), process (one unit per worker process: use it for "
                "full runs on a multi-core machine) or ray")
WORKERS_HELP = "parallel workers for --backend process or a local ray (default 2)"
PIN_HELP = ("--backend process: give each worker its own share of the cores (one core each when workers = "
            "cores; the default unless the experiment opts out), or let workers share all cores")
EXIT_INTERRUPTED = 130


class UserError(Exception):
    """An error caused by the user's input; printed as one line, exit code 2."""


def _os_error_text(error: OSError) -> str:
    """``"cannot write PATH (reason)"`` for an OSError from writing results."""
    where = error.filename2 or error.filename
    return f"cannot write {where} ({error.strerror or error})" if where else str(error)


def fail(message: str) -> None:
    """Print ``gsiirl: error: message`` (first line only) to stderr and exit with code 2."""
    first_line = str(message).strip().splitlines()[0] if str(message).strip() else "unknown error"
    typer.echo(f"gsiirl: error: {first_line}", err=True)
    raise typer.Exit(EXIT_USAGE)


def parse_options(pairs: list[str] | None) -> dict[str, str]:
    """``["key=value", ...]`` -> dict (values stay strings; the runner coerces them)."""
    options: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--option: expected key=value, got {pair!r}")
        options[key.strip()] = value.strip()
    return options


def use_compile_cache(directory: Path | None) -> None:
    """``--compile-cache DIR``: JAX's persistent compilation cache in DIR (opt-in; gsiirl.io.compile_cache)."""
    if directory is not None:
        from gsiirl.io.compile_cache import enable_compilation_cache

        enable_compilation_cache(directory)


def execute_run(experiment: str, *, methods: list[str] | None, seeds: int, iters: int, out: Path,
                resume: bool = False, force: bool = False, options: dict | None = None,
                figure: bool = True, show_progress: bool = True, echo=typer.echo, backend: str = "serial",
                workers: int | None = None, address: str | None = None, pin_workers: bool | None = None) -> dict:
    """Run an experiment with a tqdm progress bar, write DIR/results.json and the figure, print the summary.

    Raises ValueError (including ResultsFileError) for bad input; the caller turns it into a message.
    """
    from tqdm.auto import tqdm

    methods = list(methods) if methods else list(METHODS)
    module = load_experiment(experiment)
    total = len(dict.fromkeys(methods)) * int(seeds) * int(iters) if isinstance(seeds, int) and isinstance(
        iters, int) and seeds > 0 and iters > 0 else None
    bars = []  # created on first use, so that argument errors print no empty bar

    def bar():
        if not bars:
            bars.append(tqdm(total=total, desc=experiment, unit="it", disable=not show_progress, file=sys.stderr,
                             dynamic_ncols=True))
        return bars[0]

    try:
        results = run_experiment(experiment, out_dir=out, methods=methods, seeds=seeds, iterations=iters,
                                 options=options, resume=resume, force=force, progress=lambda n: bar().update(n),
                                 describe=lambda text: bar().set_description(text), backend=backend,
                                 workers=workers, address=address, pin_workers=pin_workers)
    finally:
        if bars:
            bars[0].close()
    echo(f"results: {Path(out) / 'results.json'}")
    if figure and hasattr(module, "make_figure"):
        for path in module.make_figure(results, Path(out)):
            echo(f"figure: {path}")
    if hasattr(module, "summary"):
        echo(module.summary(results))
    return results


class GsiirlApp(typer.Typer):
    """A Typer app whose console entry point reports usage errors on one line (exit code 2)."""

    def __call__(self, *args, **kwargs):
        command = typer.main.get_command(self)
        argv = kwargs.pop("args", None)
        if argv is None and args:
            argv = args[0]
        try:
            code = command.main(args=argv, prog_name="gsiirl", standalone_mode=False)
        except click_exceptions.NoArgsIsHelpError as error:
            context = getattr(error, "ctx", None)
            typer.echo(context.get_help() if context is not None else "usage: gsiirl run EXPERIMENT [OPTIONS]")
            sys.exit(EXIT_USAGE)
        except click_exceptions.UsageError as error:
            typer.echo(f"gsiirl: error: {error.format_message().splitlines()[0]}", err=True)
            sys.exit(EXIT_USAGE)
        except typer.Exit as error:  # typer.Exit/Abort: click's in older typer, typer's own since 0.29
            sys.exit(error.exit_code)
        except typer.Abort:
            typer.echo("gsiirl: interrupted; continue with --resume", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except click_exceptions.ClickException as error:
            typer.echo(f"gsiirl: error: {error.format_message().splitlines()[0]}", err=True)
            sys.exit(EXIT_USAGE)
        sys.exit(code if isinstance(code, int) else 0)


app = GsiirlApp(help="General-sum interactive inverse reinforcement learning (GSIIRL).", add_completion=False,
                no_args_is_help=True, pretty_exceptions_enable=False)


def _print_version(value: bool) -> None:
    if value:
        from gsiirl import __version__

        typer.echo(f"gsiirl {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """General-sum interactive inverse reinforcement learning (GSIIRL)."""


@app.command()
def run(
    experiment: str = typer.Argument(..., help="security, hri or mpe"),
    method: Optional[list[str]] = typer.Option(None, "--method", help="gsiirl, ma-irl or marl (repeatable; default all)"),
    seeds: int = typer.Option(10, "--seeds", help="number of seeds (0 .. N-1; HRI computes fixed groups of 5 "
                              "seeds as one vmapped batch, option seed_batch, and stores the requested ones)"),
    iters: int = typer.Option(50, "--iters", help="outer iterations per seed"),
    out: Optional[Path] = typer.Option(None, "--out", help="output directory (default runs/EXPERIMENT)"),
    resume: bool = typer.Option(False, "--resume", help="continue DIR/results.json"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing DIR/results.json"),
    hypergradient: Optional[str] = typer.Option(None, "--hypergradient", help="spsa, exact or finite_difference"),
    nodes: Optional[int] = typer.Option(None, "--nodes", help="attack-graph nodes (security)"),
    marl_solver: Optional[str] = typer.Option(None, "--marl-solver", help="equilibrium or qlearning (security)"),
    option: Optional[list[str]] = typer.Option(None, "--option", help="experiment option key=value (repeatable)"),
    figure: bool = typer.Option(True, "--figure/--no-figure", help="write the figure PNG"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
    backend: str = typer.Option("serial", "--backend", help=BACKEND_HELP),
    workers: Optional[int] = typer.Option(None, "--workers", help=WORKERS_HELP),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (--backend ray)"),
    pin_workers: Optional[bool] = typer.Option(None, "--pin-workers/--no-pin-workers", help=PIN_HELP),
    compile_cache: Optional[Path] = typer.Option(None, "--compile-cache", help="keep compiled programs in DIR "
                                                 "and reuse them in later runs and in worker processes"),
) -> None:
    """Run METHODS x SEEDS of an experiment; writes DIR/results.json (+ figure) and prints the table."""
    try:
        use_compile_cache(compile_cache)
        options = parse_options(option)
        for flag, key, value in (("--hypergradient", "hypergradient", hypergradient), ("--nodes", "nodes", nodes),
                                 ("--marl-solver", "marl_solver", marl_solver)):
            if value is not None:
                if key not in load_experiment(experiment).DEFAULT_OPTIONS:
                    raise UserError(f"{flag}: not an option of the {experiment} experiment")
                if key in options:
                    raise UserError(f"{flag}, --option {key}: expected at most one (both set {key})")
                options[key] = value
        execute_run(experiment, methods=method, seeds=seeds, iters=iters,
                    out=out if out is not None else Path("runs") / experiment, resume=resume, force=force,
                    options=options, figure=figure, show_progress=progress, backend=backend, workers=workers,
                    address=address, pin_workers=pin_workers)
    except (UserError, ResultsFileError, ValueError) as error:
        fail(str(error))
    except OSError as error:  # a folder or file the run cannot write: one line, not a traceback
        fail(_os_error_text(error))
    except KeyboardInterrupt:
        typer.echo("gsiirl: interrupted; continue with --resume", err=True)
        raise typer.Exit(EXIT_INTERRUPTED)


@app.command()
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="output directory"),
    seeds: int = typer.Option(3, "--seeds", help="seeds per method"),
    iters: int = typer.Option(30, "--iters", help="outer iterations"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
) -> None:
    """Quick demo: GSIIRL vs MA-IRL vs MARL on a small general-sum game (figure + table in OUT)."""
    from gsiirl.cli.demo import run_demo

    try:
        table = run_demo(out, seeds=seeds, iterations=iters, show_progress=progress)
    except ValueError as error:
        fail(str(error))
    except OSError as error:
        fail(_os_error_text(error))
    typer.echo(table)
    typer.echo(f"figure: {out / 'demo.png'}")


@app.command()
def reproduce(
    out: Path = typer.Option(Path("runs/reproduce"), "--out", help="output directory (re-run to resume)"),
    quick: bool = typer.Option(False, "--quick", help="a few seeds and iterations (minutes)"),
    experiment: Optional[list[str]] = typer.Option(None, "--experiment", help="mpe, hri, security (default all)"),
    backend: str = typer.Option("serial", "--backend", help=BACKEND_HELP),
    workers: Optional[int] = typer.Option(None, "--workers", help=WORKERS_HELP),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (--backend ray)"),
    pin_workers: Optional[bool] = typer.Option(None, "--pin-workers/--no-pin-workers", help=PIN_HELP),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show progress bars"),
    compile_cache: Optional[Path] = typer.Option(None, "--compile-cache", help="keep compiled programs in DIR "
                                                 "and reuse them in later runs and in worker processes"),
    reward_transfer: bool = typer.Option(True, "--reward-transfer/--no-reward-transfer",
                                         help="MPE and HRI: also retrain policies from scratch on the learned "
                                              "rewards for the reward-transfer table (not in the paper; ≈ 15 % "
                                              "of MPE's time); Table 1 and the figures are the same either way"),
) -> None:
    """All experiments x methods x seeds; writes table1.md/.csv (ours beside the paper's) and Figures 2-4."""
    from gsiirl.cli.reproduce import EXPERIMENT_ORDER, reproduce as reproduce_all

    def run_one(name, **kwargs):
        return execute_run(name, backend=backend, workers=workers, address=address, pin_workers=pin_workers,
                           **kwargs)

    try:
        use_compile_cache(compile_cache)
        chosen = tuple(experiment) if experiment else EXPERIMENT_ORDER
        for name in chosen:
            if name not in EXPERIMENT_ORDER:
                raise UserError(f"--experiment: expected one of {list(EXPERIMENT_ORDER)}, got {name!r}")
        reproduce_all(out, quick=quick, experiments=chosen, show_progress=progress, echo=typer.echo, run=run_one,
                      reward_transfer=reward_transfer)
    except (UserError, ResultsFileError, ValueError) as error:
        fail(str(error))
    except OSError as error:  # a folder or file the run cannot write: one line, not a traceback
        fail(_os_error_text(error))
    except KeyboardInterrupt:
        typer.echo("gsiirl: interrupted; re-run the same command to resume", err=True)
        raise typer.Exit(EXIT_INTERRUPTED)


def console() -> None:
    """The ``gsiirl`` console script: :data:`app`, except that after an interrupt (exit code 130, the
    finished work already saved) the process ends at once. A normal interpreter shutdown then can
    crash (segfault, exit 139) while XLA's compiler threads are still running, e.g. after a Ctrl-C
    during the first compilation. In-process callers use :func:`main`, which never does this.
    Ctrl-C is handled by :mod:`gsiirl.cli.interrupts`, so that one landing in a garbage-collector
    callback is not lost."""
    import os

    from gsiirl.cli.interrupts import install_interrupt_handler

    install_interrupt_handler()
    try:
        app()
        return
    except SystemExit as stop:
        if stop.code != EXIT_INTERRUPTED:
            raise
    # Interrupted. os._exit skips atexit, so first run what multiprocessing's atexit hook runs first — its
    # finalizers of priority >= 0, which unlink the semaphores of the worker pool's queues — else its
    # resource tracker reports them as "leaked" (and unlinks them itself). Private, hence guarded.
    from multiprocessing import util

    run_finalizers = getattr(util, "_run_finalizers", None)
    if callable(run_finalizers):
        run_finalizers(0)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_INTERRUPTED)


def main(argv: list[str] | None = None) -> None:
    """Entry point equivalent to the ``gsiirl`` console script (raises SystemExit)."""
    app(argv if argv is not None else sys.argv[1:])


if __name__ == "__main__":  # pragma: no cover
    main()
