"""Opt-in persistent XLA compilation cache for the CLI (``--compile-cache DIR``).

Compilation is a large part of a short run and of the first unit in every worker process (≈ 20–140 s per
experiment). JAX can keep compiled programs on disk and load them instead of compiling again; this
module switches that on for this process and for the worker processes it spawns.

It stays opt-in (docs/design_decisions.md, "Compilation cache"): JAX's CPU cache has had open bugs
where entries written by one jaxlib or CPU were loaded by another one and crashed. To keep one
directory safe across upgrades and machines (a shared home directory, a Ray cluster on a shared file
system), entries go to a sub-directory named after the jax/jaxlib versions and a digest of the CPU's
instruction-set flags, so a different runtime or CPU never sees them.
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path

# Every program is cached, not only those that took > 1 s to compile (JAX's default): a short run
# compiles hundreds of small programs (one-iteration MPE GSIIRL unit: 45 s cold, 23 s with JAX's
# default threshold, 15 s with every program cached).
CACHE_ENVIRONMENT = {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
MAX_CACHE_BYTES = 2 * 1024 ** 3  # least recently used entries are evicted beyond this


def runtime_fingerprint() -> str:
    """``jax-<v>_jaxlib-<v>_<machine>-<digest of the CPU flags>``: the sub-directory name of the cache."""
    import jax
    import jaxlib.version

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as file:
            cpu = next((line for line in file if line.startswith(("flags", "Features"))), cpu)
    except OSError:
        pass
    digest = hashlib.sha256(cpu.encode()).hexdigest()[:12]
    return f"jax-{jax.__version__}_jaxlib-{jaxlib.version.__version__}_{platform.machine() or 'cpu'}-{digest}"


def enable_compilation_cache(directory: str | os.PathLike) -> Path:
    """Use ``directory/<runtime_fingerprint()>`` as JAX's persistent compilation cache, here and in
    worker processes started after this call (through environment variables, which spawned processes
    and a local Ray instance inherit). Returns the directory the entries go to.

    Raises ValueError naming ``compile_cache`` if the directory cannot be created or written."""
    import jax

    target = Path(directory).expanduser() / runtime_fingerprint()
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"compile_cache: cannot create directory {target}: {error.strerror or error}") from None
    if not os.access(target, os.W_OK):
        raise ValueError(f"compile_cache: directory {target} is not writable")
    settings = {"JAX_COMPILATION_CACHE_DIR": str(target), "JAX_COMPILATION_CACHE_MAX_SIZE": str(MAX_CACHE_BYTES),
                **CACHE_ENVIRONMENT}
    os.environ.update(settings)
    jax.config.update("jax_compilation_cache_dir", str(target))
    jax.config.update("jax_compilation_cache_max_size", MAX_CACHE_BYTES)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return target


def cache_environment() -> dict[str, str]:
    """The cache's environment variables as set in this process (for a Ray ``runtime_env``)."""
    names = ("JAX_COMPILATION_CACHE_DIR", "JAX_COMPILATION_CACHE_MAX_SIZE", *CACHE_ENVIRONMENT)
    return {name: os.environ[name] for name in names if name in os.environ}
