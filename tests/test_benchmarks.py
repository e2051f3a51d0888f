"""The benchmarks' units still run against the current API (benchmarks are not run by CI otherwise)."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))


def test_seed_batching_security_unit_evaluates_a_batch():
    from bench_seed_batching import security_unit

    evaluation = security_unit(2)()  # crashed before session 12: FitConfig's lower_gradient "auto" unresolved
    assert np.asarray(evaluation.upper_objective).shape == (2,)
    assert all(np.all(np.isfinite(np.asarray(x))) for x in evaluation)
