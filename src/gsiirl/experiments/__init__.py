"""Experiments of the paper (§8): security attack graph, human–robot interaction, MPE physical deception.

Each experiment module exposes ``DEFAULT_OPTIONS``, ``make_unit_runner(options)`` and
``make_figure(results, out_dir)``; :mod:`gsiirl.experiments.runner` runs methods × seeds of one of them
resumably. Modules are imported lazily (by name) so that one experiment's optional dependencies never
affect the others.
"""

EXPERIMENTS = {
    "security": "gsiirl.experiments.security",
    "hri": "gsiirl.experiments.hri",
    "mpe": "gsiirl.experiments.mpe",
}

__all__ = ["EXPERIMENTS"]
