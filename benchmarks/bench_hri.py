"""HRI benchmark (not a test): vmapped env steps/s, one GSIIRL outer iteration, a whole unit / run.

    python benchmarks/bench_hri.py                 # env throughput + outer-iteration time, 1 vs 5 seeds
    python benchmarks/bench_hri.py --unit 100      # + one unit (a group of 5 seeds) of each method, K=100
    python benchmarks/bench_hri.py --full 10 100   # + the full run: 10 seeds x 100 iterations, all methods
    python benchmarks/bench_hri.py --ma-irl-gradient 20  # + one MA-IRL group per `ma_irl_gradient`, K=20, ratio

The goal of issue #5 is the full HRI run (10 seeds x 100 iterations) in under 10 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp


def env_throughput(num_envs: int = 4096, repeats: int = 5) -> float:
    """Joint env steps per second of a vmapped uniform-random rollout (horizon steps per episode)."""
    from gsiirl.games.continuous import rollout
    from gsiirl.games.hri import make_hri_game

    game = make_hri_game()
    policy = lambda key, obs: jax.random.randint(key, (2,), 0, game.num_actions[0])
    run = jax.jit(lambda key: rollout(key, game, policy, num_envs).alive)
    jax.block_until_ready(run(jax.random.PRNGKey(0)))
    start = time.perf_counter()
    for i in range(repeats):
        jax.block_until_ready(run(jax.random.PRNGKey(i + 1)))
    return repeats * num_envs * game.horizon / (time.perf_counter() - start)


def outer_iteration_time(iterations: int = 6, batch: int = 1) -> tuple[float, float]:
    """(seconds for the first GSIIRL iteration incl. compilation and warm-up, mean seconds per later one)
    of a group of ``batch`` seeds run as one vmapped batch (``SampleBasedGSIIRL.run_seeds``)."""
    from gsiirl.experiments import hri

    _, algorithm = hri._build(hri._freeze(hri.DEFAULT_OPTIONS))
    keys = jnp.stack([jax.random.PRNGKey(seed) for seed in range(batch)])
    stamps = []
    start = time.perf_counter()
    algorithm.run_seeds("gsiirl", keys, iterations, lambda k, m: stamps.append(time.perf_counter()))
    later = [b - a for a, b in zip(stamps[:-1], stamps[1:])]
    return stamps[0] - start, sum(later) / len(later)


def unit_times(iterations: int) -> dict[str, float]:
    """Wall time of one unit per method: the group of seeds 0..B-1 (B = the default ``seed_batch``),
    compilation of that method's pieces included."""
    from gsiirl.experiments import hri

    run = hri.make_group_runner({})
    group = tuple(range(hri.DEFAULT_OPTIONS["seed_batch"]))
    times = {}
    for method in ("marl", "gsiirl", "ma-irl"):
        start = time.perf_counter()
        run(method, group, iterations, lambda k: None)
        times[method] = time.perf_counter() - start
    return times


def ma_irl_gradient_times(iterations: int, options: dict | None = None) -> dict[str, tuple[float, float]]:
    """Per ``ma_irl_gradient`` value: (seconds of the first MA-IRL unit, compilation included; seconds of the same
    unit run again, warm) for the group of seeds 0..B-1, without the reward-transfer retraining unless ``options``
    (HRI option overrides) ask for it. Both values run in this one process, one after the other, so their ratio is
    the option's cost on this machine."""
    from gsiirl.experiments import hri

    options = {"retrain_evaluation": False, **(options or {})}
    group = tuple(range(options.get("seed_batch", hri.DEFAULT_OPTIONS["seed_batch"])))
    times = {}
    for gradient in ("joint", "best_response"):
        run = hri.make_group_runner({**options, "ma_irl_gradient": gradient})
        seconds = []
        for _ in range(2):
            start = time.perf_counter()
            run("ma-irl", group, iterations, lambda k: None)
            seconds.append(time.perf_counter() - start)
        times[gradient] = (seconds[0], seconds[1])
    return times


def full_run(seeds: int, iterations: int) -> float:
    from gsiirl.experiments.runner import run_experiment

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        run_experiment("hri", out_dir=Path(out), seeds=seeds, iterations=iterations)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--unit", type=int, default=0, help="also time one unit per method with K iterations")
    parser.add_argument("--batch", type=int, default=5, help="seed-group size to compare with one seed")
    parser.add_argument("--full", type=int, nargs=2, metavar=("SEEDS", "ITERS"), help="also time a full run")
    parser.add_argument("--ma-irl-gradient", type=int, default=0, metavar="K",
                        help="also time one MA-IRL group with each ma_irl_gradient (K iterations) and their ratio")
    args = parser.parse_args()
    print(f"jax {jax.__version__}, devices {jax.devices()}, x64={jnp.zeros(()).dtype == jnp.float64}")
    print(f"env: {env_throughput():,.0f} joint steps/s (4,096 vmapped envs, uniform-random policy)")
    first, single = outer_iteration_time()
    print(f"gsiirl: first outer iteration {first:.1f} s (compile + warm-up), then {single:.3f} s/iteration")
    batch = args.batch
    first, grouped = outer_iteration_time(batch=batch)
    print(f"gsiirl, {batch} seeds vmapped: first iteration {first:.1f} s, then {grouped:.3f} s/iteration = "
          f"{grouped / batch:.3f} s per seed-iteration, ratio to one seed {grouped / batch / single:.2f}")
    if args.unit:
        for method, seconds in unit_times(args.unit).items():
            print(f"unit {method} (K={args.unit}): {seconds:.1f} s")
    if args.ma_irl_gradient:
        times = ma_irl_gradient_times(args.ma_irl_gradient)
        for gradient, (first, warm) in times.items():
            print(f"ma-irl unit, ma_irl_gradient={gradient} (K={args.ma_irl_gradient}): {first:.1f} s with "
                  f"compilation, {warm:.1f} s warm")
        print(f"best_response / joint: {times['best_response'][0] / times['joint'][0]:.2f} with compilation, "
              f"{times['best_response'][1] / times['joint'][1]:.2f} warm")
    if args.full:
        seeds, iterations = args.full
        print(f"full run ({seeds} seeds x {iterations} iterations, all methods): {full_run(seeds, iterations):.1f} s")


if __name__ == "__main__":
    main()
