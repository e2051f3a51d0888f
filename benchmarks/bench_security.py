"""Benchmark (not a test): the security experiment's wall time.

1. The whole 3-method × seeds × iterations run (default 10 × 50, the acceptance command), through the
   same runner the CLI uses.
2. One GSIIRL outer iteration on a 16-node graph (65,536 states): ``fit(outer_iters=1)`` with sequential
   SPSA evaluations, reporting its time (including compilation) from the history's ``wall_time``.

Usage: python benchmarks/bench_security.py [--seeds 10] [--iters 50] [--nodes-large 16] [--skip-full]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def bench_full(seeds: int, iters: int) -> None:
    from gsiirl.experiments.runner import run_experiment
    from gsiirl.experiments.security import summary

    with tempfile.TemporaryDirectory() as out:
        for method in ("marl", "ma-irl", "gsiirl"):
            started = time.perf_counter()
            results = run_experiment("security", out_dir=Path(out) / method, methods=[method], seeds=seeds,
                                     iterations=iters)
            print(f"{method:>7}: {time.perf_counter() - started:8.1f} s for {seeds} seeds x {iters} iterations",
                  flush=True)
    print(summary(results))


def bench_large(nodes: int) -> None:
    from gsiirl.algorithms.gsiirl import fit
    from gsiirl.games.security import SecurityReward, generate_attack_graph, security_game

    started = time.perf_counter()
    graph = generate_attack_graph(0, nodes)
    game = security_game(graph)
    model = SecurityReward(graph)
    print(f"{nodes}-node game built in {time.perf_counter() - started:.1f} s: {game}", flush=True)
    started = time.perf_counter()
    # sequential SPSA evaluations: the vmapped batch of 10 solves does not fit in 24 GB at 65,536 states
    result = fit(game, method="gsiirl", outer_iters=1, seed=0, learner_model=model, expert_model=model,
                 inner_step_size=0.02, sequential_evaluations=True)
    total = time.perf_counter() - started
    print(f"GSIIRL on {graph.num_states} states: one outer iteration {result.history['wall_time'][0]:.1f} s "
          f"(including compilation); fit total {total:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--iters", type=int, default=50)
    parser.add_argument("--nodes-large", type=int, default=16)
    parser.add_argument("--skip-full", action="store_true")
    parser.add_argument("--skip-large", action="store_true")
    args = parser.parse_args()
    if not args.skip_full:
        bench_full(args.seeds, args.iters)
    if not args.skip_large:
        bench_large(args.nodes_large)


if __name__ == "__main__":
    main()
