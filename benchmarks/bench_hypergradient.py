"""Hypergradient benchmark (issue: GSIIRL): cost of one hypergradient vs horizon T, SPSA vs exact, and
iterations / wall time to reach 95 % of the final learner return with each.

The paper's Theorem 1 claims O(T²) for SPSA vs O(T³) for the exact hypergradient; here both are timed
on the same game for T = 10 … 160 (after compilation), the log-log slopes are fitted, and a log-log
plot is written to benchmarks/results/hypergradient_cost.png.
Run: ``python benchmarks/bench_hypergradient.py``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax
import numpy as np

from _timing import median_seconds, print_table
import gsiirl
from gsiirl.algorithms.gsiirl import _spsa_step
from gsiirl.algorithms.interaction import SimulatedExpert
from gsiirl.algorithms.lower_level import LowerLevelProblem
from gsiirl.games.random import random_tabular_game
from gsiirl.hypergradients.exact import exact_hypergradient
from gsiirl.rewards import LinearReward

RESULTS = Path(__file__).parent / "results"


def cost_versus_horizon(horizons, repeats):
    rows = []
    for horizon in horizons:
        game = random_tabular_game(0, num_states=16, num_learner_actions=3, num_expert_actions=3, horizon=horizon,
                                   discount=0.99, num_successors=2, sparse=True)
        rng = np.random.default_rng(0)
        problem = LowerLevelProblem(game, LinearReward(rng.normal(size=game.joint_shape + (8,))),
                                    LinearReward(rng.normal(size=game.joint_shape + (8,))), regularization=0.1)
        expert = SimulatedExpert(game)
        theta_l, theta_e = 0.1 * np.ones(8), 0.1 * np.ones(8)
        data = expert.expected_data(problem.learner_reward_table(theta_l))
        key = jax.random.PRNGKey(0)
        spsa = median_seconds(lambda: _spsa_step(problem, "lemma1", 4, key, theta_l, theta_e, data, 0.1),
                              repeats=repeats)
        exact = median_seconds(lambda: exact_hypergradient(problem, expert, theta_l, theta_e),
                               repeats=repeats)
        rows.append([horizon, spsa, exact, exact / spsa])
    return rows


def time_to_95_percent(iterations, seeds):
    game = gsiirl.random_tabular_game(1, num_states=5, num_learner_actions=2, num_expert_actions=2, horizon=4)
    settings = dict(radius=3.0, perturbation_scale=0.3, inner_step_size=0.5, outer_step_size=0.5, data="expected")
    rows = []
    for name in ("spsa", "exact"):
        reached, seconds, finals = [], [], []
        for seed in range(seeds):

            history = gsiirl.fit(game, hypergradient=name, outer_iters=iterations, seed=seed, **settings).history
            returns = np.array(history["learner_return"])
            start_value, final = returns[0], returns[-5:].mean()
            target = start_value + 0.95 * (final - start_value)
            hit = int(np.argmax(returns >= target)) + 1
            reached.append(hit)
            seconds.append(history["wall_time"][hit - 1] - history["wall_time"][0])
            finals.append(final)
        rows.append([name, float(np.mean(reached)), float(np.mean(seconds)), float(np.mean(finals))])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--horizons", type=int, nargs="+", default=[10, 20, 40, 80, 160])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)

    rows = cost_versus_horizon(args.horizons, args.repeats)
    print("\nOne hypergradient (16 states, 3x3 actions, d_l = d_e = 8, n_spsa = 4), seconds after compilation")
    print_table(["T", "spsa", "exact", "exact / spsa"], rows)
    t = np.log([r[0] for r in rows])
    slopes = {name: np.polyfit(t, np.log([r[i] for r in rows]), 1)[0] for i, name in ((1, "spsa"), (2, "exact"))}
    print(f"log-log slopes: spsa {slopes['spsa']:.2f}, exact {slopes['exact']:.2f} (paper: 2 and 3)")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(5, 4))
    for index, name in ((1, "spsa"), (2, "exact")):
        axis.loglog([r[0] for r in rows], [r[index] for r in rows], "o-", label=f"{name} (slope {slopes[name]:.2f})")
    axis.set_xlabel("horizon T")
    axis.set_ylabel("seconds per hypergradient")
    axis.legend()
    figure.tight_layout()
    figure.savefig(RESULTS / "hypergradient_cost.png", dpi=120)

    print(f"\nOuter iterations and wall time to reach 95 % of the final learner return ({args.seeds} seeds, "
          f"{args.iterations} iterations, exact data expectations)")
    print_table(["hypergradient", "iterations to 95 %", "seconds to 95 %", "final learner return"],
                time_to_95_percent(args.iterations, args.seeds))


if __name__ == "__main__":
    main()
