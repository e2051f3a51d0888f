"""Versions of the installed libraries that numbers depend on (recorded in results files and checkpoints)."""

from __future__ import annotations

import importlib.metadata


def package_version(name: str) -> str:
    """The installed version of ``name``, or "not installed". For ``gsiirl`` itself, the imported code's
    ``__version__``: an editable install's metadata keeps the version it was installed with, so after a version
    bump it would name the old one (session 43's first results files said 0.5.0 for 0.6.0's code)."""
    if name == "gsiirl":
        from gsiirl import __version__

        return __version__
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def checkpoint_versions() -> dict[str, str]:
    """The versions a saved run's numbers depend on; a checkpoint written with others is not continued."""
    return {name: package_version(name) for name in ("gsiirl", "jax", "jaxlib", "optax")}
