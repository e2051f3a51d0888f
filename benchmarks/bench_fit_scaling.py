"""``fit`` on your own larger tabular game, built as docs/user_guide.md §1 shows (sparse successors).

For each size (S states, horizon T; 4×4 actions, K = 3 successors, d = 4 random features shared by both
reward models) one ``gsiirl.fit`` run of a few outer iterations: the first iteration's extra time
(≈ compilation), seconds per later iteration, and that per state·stage as a ratio to the first size
(flat = linear in S·T). Then XLA's compiled memory for the likelihood's exact gradient (MA-IRL's step,
lower_gradient="autodiff") per state·stage — nothing is allocated for it (session 32: 12 KB per state and
stage before the solver's stages were rematerialised above ``REMATERIALISE_ABOVE``, 187 B after).
Peak RSS: run one size per process under ``/usr/bin/time -v``.

Run: ``python benchmarks/bench_fit_scaling.py [--sizes 1000x20,1000x100,10000x20] [--method gsiirl]``.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import gsiirl
from _timing import print_table
from gsiirl.algorithms.gsiirl import _joint_descent_gradient

ACTIONS, SUCCESSORS, FEATURES = 4, 3, 4


def user_game(num_states: int, horizon: int, seed: int = 0):
    """A random sparse game and features, through the public constructor (as a user would build one)."""
    rng = np.random.default_rng(seed)
    shape = (num_states, ACTIONS, ACTIONS)
    features = 0.25 * rng.normal(size=shape + (FEATURES,))
    weights = rng.normal(size=(2, FEATURES))
    weights *= 1.2 / np.linalg.norm(weights, axis=1, keepdims=True)
    initial = np.zeros(num_states)
    initial[:10] = 0.1
    game = gsiirl.TabularGame(successor_states=rng.integers(0, num_states, shape + (SUCCESSORS,)),
                              successor_probs=rng.dirichlet(np.ones(SUCCESSORS), shape), initial=initial,
                              horizon=horizon, discount=0.95, learner_reward=0.1 * rng.normal(size=shape[:2]),
                              learner_oracle=features @ weights[0], expert_reward=features @ weights[1])
    return game, features


def fit_timing(num_states: int, horizon: int, method: str, outer_iters: int, iterations: int) -> tuple[float, float]:
    """(first iteration minus a later one ≈ compilation, median seconds per later iteration)."""
    game, features = user_game(num_states, horizon)
    stamps = [time.perf_counter()]
    gsiirl.fit(game, method=method, outer_iters=outer_iters, seed=0, learner_model=gsiirl.LinearReward(features),
               expert_model=gsiirl.LinearReward(features), radius=2.0, num_trajectories=100,
               perturbation_scale=0.3, outer_step_size=0.5, iterations=iterations,
               progress=lambda k: stamps.append(time.perf_counter()))
    per_iteration = np.diff(stamps)
    steady = float(np.median(per_iteration[1:]))
    return float(per_iteration[0]) - steady, steady


def gradient_memory(num_states: int, horizon: int, iterations: int) -> float:
    """Bytes of XLA temporaries for MA-IRL's exact likelihood gradient (compiled, not run)."""
    game, features = user_game(num_states, horizon)
    model = gsiirl.LinearReward(features)
    problem = gsiirl.LowerLevelProblem(game, model, model, iterations=iterations)
    theta = jnp.zeros(FEATURES)
    data = jnp.zeros((horizon,) + game.joint_shape)
    compiled = _joint_descent_gradient.lower(problem, "autodiff", theta, theta, data).compile()
    analysis = compiled.memory_analysis()
    return float("nan") if analysis is None else float(analysis.temp_size_in_bytes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000x20,1000x100,10000x20", help="comma-separated SxT")
    parser.add_argument("--method", default="gsiirl", choices=("gsiirl", "ma-irl"))
    parser.add_argument("--outer-iters", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=10, help="stage solver iterations (fit's default: 60)")
    args = parser.parse_args()
    sizes = [tuple(int(n) for n in size.split("x")) for size in args.sizes.split(",")]

    rows, base = [], None
    for num_states, horizon in sizes:
        compile_s, steady = fit_timing(num_states, horizon, args.method, args.outer_iters, args.iterations)
        per_unit = steady / (num_states * horizon)
        base = base or per_unit
        rows.append([num_states, horizon, compile_s, steady, per_unit * 1e6, per_unit / base])
        jax.clear_caches()
    print(f"\nfit(method={args.method!r}) on sparse user games, {ACTIONS}x{ACTIONS} actions, K={SUCCESSORS}, "
          f"d={FEATURES}, iterations={args.iterations}; flat last column = linear in S·T")
    print_table(["S", "T", "compile s (first - later)", "s per iteration", "µs per state·stage",
                 "ratio to first size"], rows)

    rows = []
    for num_states, horizon in sizes:
        for iterations in (args.iterations, 60):
            temp = gradient_memory(num_states, horizon, iterations)
            rows.append([num_states, horizon, iterations, temp / 2 ** 20, temp / (num_states * horizon)])
    print("\nMA-IRL's exact likelihood gradient: XLA temporaries (compiled only)")
    print_table(["S", "T", "iterations", "MiB", "bytes per state·stage"], rows)


if __name__ == "__main__":
    main()
