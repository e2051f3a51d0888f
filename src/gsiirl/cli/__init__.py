"""Command-line interface: ``gsiirl run EXPERIMENT ...`` (see :mod:`gsiirl.cli.main`)."""

from gsiirl.cli.main import app, execute_run, main

__all__ = ["app", "execute_run", "main"]
