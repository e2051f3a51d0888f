"""A checkpoint (or a FitResult) is two files; a crash at ANY moment of a save (a SIGKILL, or the SIGTERM
that stops a worker process after a Ctrl-C) must leave a pair that loads: the previous save's or the new one,
never an old .json beside a new .npz that blocks `gsiirl run --resume` until the user deletes files."""

import os

import numpy as np
import pytest

from gsiirl.algorithms.config import FitResult
from gsiirl.algorithms.run_state import RunState
from gsiirl.solvers.equilibrium import JointPolicy


class Crash(BaseException):
    """The process dies here (nothing after this point of the save happens)."""


def _crash_at(monkeypatch, moves: int):
    """Let ``moves`` os.replace calls (the commits of atomic writes) succeed, then die."""
    real, done = os.replace, [0]

    def replace(*args, **kwargs):
        if done[0] == moves:
            raise Crash()
        done[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(os, "replace", replace)


@pytest.mark.parametrize("moves", range(4))
def test_a_run_state_save_killed_at_any_moment_leaves_a_loadable_pair(tmp_path, monkeypatch, moves):
    state = RunState(tmp_path / "unit", {"experiment": "x"}, discard_mismatched=True)
    state.save("gsiirl", 1, {"theta_l": np.zeros(3, np.float32)}, {"wall_time": 1.0})
    with monkeypatch.context() as patch:
        _crash_at(patch, moves)
        try:
            state.save("gsiirl", 2, {"theta_l": np.ones(3, np.float32)}, {"wall_time": 2.0})
        except Crash:
            pass
    phase, completed, trees, _ = state.load(lambda phase, completed: {"theta_l": np.zeros(3, np.float32)})
    assert (phase, completed) in (("gsiirl", 1), ("gsiirl", 2))
    np.testing.assert_array_equal(np.asarray(trees["theta_l"]), np.full(3, completed - 1, np.float32))
    state.delete()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("moves", range(4))
def test_a_fit_result_save_killed_at_any_moment_leaves_a_loadable_pair(tmp_path, monkeypatch, moves):
    policy = JointPolicy(np.full((1, 2, 2), 0.5, np.float32), np.full((1, 2, 2), 0.5, np.float32), None)
    FitResult(np.zeros(2), np.zeros(2), policy, {"x": [1.0]}, {"completed_iterations": 1}).save(tmp_path / "c")
    with monkeypatch.context() as patch:
        _crash_at(patch, moves)
        try:
            FitResult(np.ones(2), np.ones(2), policy, {"x": [1.0, 2.0]},
                      {"completed_iterations": 2}).save(tmp_path / "c")
        except Crash:
            pass
    loaded = FitResult.load(tmp_path / "c")
    completed = loaded.config["completed_iterations"]
    assert completed in (1, 2) and len(loaded.history["x"]) == completed
    np.testing.assert_array_equal(np.asarray(loaded.theta_l), np.full(2, completed - 1.0))
