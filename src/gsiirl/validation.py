"""Argument checks shared by the public entry points: errors name the argument and what was expected."""

from __future__ import annotations

import math
import numbers

import numpy as np


def is_integer(value) -> bool:
    """True for Python and NumPy integers, False for bools (``True`` is not a count) and everything else."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_positive_number(value) -> bool:
    """True for a real number > 0 (Python or NumPy; NaN is not), False for bools, strings and everything else."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and value > 0


def is_finite_real_scalar(value) -> bool:
    """True for a finite real scalar: a Python, NumPy or JAX (0-d) int or float; False for bools, strings,
    arrays with dimensions, complex numbers, NaN and infinities."""
    if isinstance(value, (bool, str, bytes)) or np.ndim(value) != 0 or np.asarray(value).dtype.kind not in "iuf":
        return False
    return math.isfinite(float(value))


def check_count(name: str, value, minimum: int) -> int:
    """``value`` as an int, or ValueError ``"name: expected an integer >= minimum, got value"``."""
    if not is_integer(value) or value < minimum:
        raise ValueError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)
