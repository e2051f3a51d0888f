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


def test_simulator_scaling_game_is_a_valid_game_of_the_asked_sizes():
    from bench_simulator_scaling import chase_game

    game = chase_game(horizon=7, state_size=9, num_actions=9, num_features=5)  # validate_game inside
    assert (game.horizon, game.state_size, game.num_actions, game.learner_feature_size) == (7, 9, (9, 9), 5)


def test_hri_ma_irl_gradient_benchmark_times_both_variants_twice():
    from bench_hri import ma_irl_gradient_times
    from test_diagnostics import TINY_HRI  # the tiny HRI configuration the diagnostics' tests run

    times = ma_irl_gradient_times(1, {**TINY_HRI, "seed_batch": 1})
    assert set(times) == {"joint", "best_response"}
    assert all(len(pair) == 2 and all(np.isfinite(t) and t > 0 for t in pair) for pair in times.values())
