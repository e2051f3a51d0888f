"""Test configuration: double precision so that analytic-vs-autodiff-vs-finite-difference checks are tight."""

import contextlib
import gc
import os
import subprocess
import sys

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("MPLBACKEND", "Agg")
# The suite is dominated by XLA compilation of small test-sized programs (≈ 80 % of its time), not by
# running them. Tests check the maths, not the compiler, so they compile cheaply (same semantics, slower
# code): backend optimisation level 0 (session 8: ≈ 40 % less wall time); XLA:CPU's older elemental
# fusion emitters instead of its MLIR fusion emitters, and one LLVM module per program instead of
# several compiled on threads that the two test workers' cores do not have (session 44, whole suite on
# one machine back to back: 16:27 → 8:57). Set GSIIRL_TEST_XLA_OPT=default to test with production
# compiler settings.
TEST_XLA_FLAGS = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false",
                  "--xla_cpu_parallel_codegen_split_count=1")


def _xla_flags_with(flags) -> str:
    """``XLA_FLAGS`` as this process has it, with ``flags`` appended."""
    return " ".join([os.environ.get("XLA_FLAGS", ""), *flags]).strip()


def _flags_this_xla_accepts(flags):
    """The flags of ``flags`` the installed XLA knows. XLA aborts a process whose ``XLA_FLAGS`` holds a flag
    it does not know (jaxlib 0.5.0, this project's lower bound, has no ``xla_cpu_use_fusion_emitters``), so
    the flags are tried in a child process first: all at once, else one by one."""
    def accepted(candidate):
        env = {**os.environ, "XLA_FLAGS": _xla_flags_with(candidate)}
        probe = "import jax, jax.numpy as jnp; jax.jit(jnp.sin)(jnp.ones(2)).block_until_ready()"
        return subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, timeout=300).returncode == 0

    return flags if accepted(flags) else tuple(flag for flag in flags if accepted((flag,)))


# pytest-xdist's workers inherit the environment of the controller, which chose the flags once.
if os.environ.get("GSIIRL_TEST_XLA_OPT", "0") != "default" and "GSIIRL_TEST_XLA_FLAGS" not in os.environ:
    chosen = _flags_this_xla_accepts(TEST_XLA_FLAGS)
    os.environ["GSIIRL_TEST_XLA_FLAGS"] = " ".join(chosen)
    os.environ["XLA_FLAGS"] = _xla_flags_with(chosen)

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)

# GSIIRL_TEST_COMPILE_CACHE=DIR: keep the compiled test programs in DIR and reuse them in later local
# runs of the suite (opt-in, like the CLI's --compile-cache; CI starts from a clean machine anyway).
if os.environ.get("GSIIRL_TEST_COMPILE_CACHE"):
    from gsiirl.io.compile_cache import enable_compilation_cache  # noqa: E402

    enable_compilation_cache(os.environ["GSIIRL_TEST_COMPILE_CACHE"])


# The largest process of a full one-process run of the suite (pytest, or a process a test started) peaked
# at 4.6 GB of resident memory (session 28).
WORKER_MEMORY_BYTES = 5 * 1024**3


def pytest_xdist_auto_num_workers(config):
    """How many test processes ``-n auto`` (pyproject's addopts) starts: one per core this run may use
    (its CPU affinity, not the machine's count), but no more than the memory holds at
    ``WORKER_MEMORY_BYTES`` each. The suite is mostly XLA compiling small programs, one core per
    program, so a second process on a second core is what makes it faster (docs/results.md, session 28)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf: trust the core count
        return cores
    return max(1, min(cores, memory // WORKER_MEMORY_BYTES))


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs after every test module.

    Each compiled XLA:CPU program keeps its own memory mappings, and jit caches keep every program alive
    for the life of the process. The whole suite compiles many distinct programs: a monitored run peaked
    at 63,141 mappings against Linux's default limit of 65,530 per process (``vm.max_map_count``), and
    3 of 5 runs died late in the suite inside an XLA compilation (CI exit 139/134) — past the limit,
    we infer. Clearing the caches between modules keeps the peak at ≈ 11,600 (RSS 2.0 GB instead of
    5.7 GB, no slower); a program a later module needs is compiled again."""
    yield
    jax.clear_caches()
    gc.collect()


@pytest.fixture(scope="session")
def tiny_hri_backend():
    """Builder of a tiny sample-based back-end on the HRI game (horizon 5, 8-unit MADDPG, a few episodes)
    for tests of the back-end's plumbing; keyword arguments override SampleBasedConfig fields."""
    from gsiirl.algorithms.sample_based import SampleBasedConfig, SampleBasedGSIIRL
    from gsiirl.games.hri import make_hri_game
    from gsiirl.solvers.maddpg import MADDPGConfig

    def build(**overrides):
        maddpg = MADDPGConfig(hidden=8, num_envs=4, iterations=1, updates_per_iteration=2, buffer_iterations=2,
                              minibatch_size=16)
        config = SampleBasedConfig(**{**dict(maddpg=maddpg, warmup_iterations=2, data_episodes=8,
                                             evaluation_episodes=8, spsa_samples=1, regularization=0.5, radius=1.0,
                                             inner_step_size=0.1, max_hypergradient_norm=2.0), **overrides})
        return SampleBasedGSIIRL(make_hri_game({"horizon": 5}), config)

    return build


@contextlib.contextmanager
def _float32_mode():
    previous = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    try:
        yield
    finally:
        jax.config.update("jax_enable_x64", previous)


@pytest.fixture(scope="session")
def float32_mode():
    """``with float32_mode():`` runs its body in JAX's default float32 mode (users' and the CLI's) and
    restores the suite's x64 after. Through ``jax.config`` rather than ``jax.enable_x64``, which only
    jax >= 0.8 has (pyproject allows older jax)."""
    return _float32_mode


_BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"
_compilation_logs: list[list] = []  # the open `compilations()` contexts' lists


def _on_event_duration(event, duration, **kwargs):
    if event == _BACKEND_COMPILE_EVENT:
        for log in _compilation_logs:
            log.append(kwargs.get("fun_name"))  # the program's name where jax passes it (not in 0.5)


@contextlib.contextmanager
def _compilations():
    if not getattr(_compilations, "registered", False):  # one listener per process, never removed: jax 0.5
        jax.monitoring.register_event_duration_secs_listener(_on_event_duration)  # has no public unregister
        _compilations.registered = True
    log: list = []
    _compilation_logs.append(log)
    try:
        yield log
    finally:
        _compilation_logs.remove(log)


@pytest.fixture(scope="session")
def compilations():
    """``with compilations() as compiled:`` collects one entry per XLA program compiled in its body
    (the program's name, or None with jax versions that do not report it)."""
    return _compilations


@pytest.fixture
def write_one_seed_results():
    """``write(directory, experiment, method, options, stored)``: a results file of one seed of ``method``
    (metrics ``stored``) made with ``options`` and no recorded library versions, as an older run left it."""
    from gsiirl.experiments.results_file import save_results

    def write(directory, experiment: str, method: str, options: dict, stored: dict) -> None:
        save_results({"schema_version": 1, "experiment": experiment, "versions": {},
                      "config": {"experiment": experiment, "methods": [method], "seeds": 1, "iterations": 1,
                                 "options": options},
                      "methods": {method: {"seeds": {"0": stored}, "final": {}}}}, directory / "results.json")

    return write
