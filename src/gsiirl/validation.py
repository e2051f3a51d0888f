"""Argument checks shared by the public entry points: errors name the argument and what was expected."""

from __future__ import annotations

import numbers


def is_integer(value) -> bool:
    """True for Python and NumPy integers, False for bools (``True`` is not a count) and everything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_positive_number(value) -> bool:
    """True for a real number > 0 (Python or NumPy; NaN is not), False for bools, strings and everything else."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value > 0


def check_count(name: str, value, minimum: int) -> int:
    """``value`` as an int, or ValueError ``"name: expected an integer >= minimum, got value"``."""
    if not is_integer(value) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)
