"""The dependency lower bounds in pyproject.toml are the versions the suite was run with pinned
(.ci/minimum-versions.txt): a bound raised or lowered in one file and not the other fails here; and the
suite's compiler flags run at those versions."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _lower_bounds() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    bounds = {}
    for requirement in requirements:
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", requirement.replace(" ", ""))
        assert match, f"pyproject.toml: {requirement!r} has no plain '>=' lower bound"
        bounds.setdefault(match[1].lower(), match[2])
    return bounds


def _release(version: str) -> tuple[int, ...]:
    parts = [int(p) for p in version.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def test_minimum_versions_file_pins_every_lower_bound():
    pinned = {}
    for line in (ROOT / ".ci" / "minimum-versions.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pinned[name.strip().lower()] = version.strip()
    bounds = _lower_bounds()
    assert set(pinned) == set(bounds)
    for name, bound in bounds.items():
        assert _release(pinned[name]) == _release(bound), f"{name}: pyproject >= {bound}, pinned {pinned[name]}"


def test_compiler_flags_this_xla_does_not_know_are_left_out_of_the_suite():
    """XLA aborts a process on an unknown XLA_FLAGS entry, and the suite's cheap-compilation flags are not all
    known to jaxlib 0.5.0 (the lower bound): conftest keeps the flags a child process accepts."""
    from conftest import TEST_XLA_FLAGS, _flags_this_xla_accepts

    known = TEST_XLA_FLAGS[0]  # the optimisation level: in every XLA this project supports
    assert _flags_this_xla_accepts((known, "--xla_gsiirl_no_such_flag=1")) == (known,)
    assert _flags_this_xla_accepts((known,)) == (known,)
