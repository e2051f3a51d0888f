"""Which part of GSIIRL's learned rewards (the human's θe, taken apart; the robot's θl) costs the robot its return?

Reads a ``gsiirl run hri`` results file with a GSIIRL unit. For each seed the robot keeps its TRUE r_ld and
the human is trained on a variant of the seed's final learned θe; both are trained FROM SCRATCH with the
MARL unit's key and budget (``SampleBasedGSIIRL.retrained_evaluations``, the run's own options, seeds in the
run's groups) and scored with the true rewards over ``--episodes`` greedy episodes. Variants of the human's
reward (θe* = ``gsiirl.games.hri.true_parameters``' expert weights, θe = the learned ones):

    true                         the true r_e (exactly the MARL unit's training)
    true_weights                 θe* in the linear model (the soft collision feature instead of the indicator)
    true_direction_learned_norm  θe*/|θe*| · |θe|
    learned                      θe
    learned_direction_true_norm  θe/|θe| · |θe*|
    without_speed                learned_direction_true_norm with the speed weight set to 0, renormalised
    true_collision_ratio         learned_direction_true_norm with the collision weight set to θe*'s ratio to the
                                 goal weight (times the learned goal weight), renormalised

Two more variants put the robot on the seed's learned θl (the 2 × 2 of learned and true rewards):

    learned_robot                the robot on θl, the human on its true r_e
    learned_pair                 the robot on θl, the human on θe (Table 1's reward-transfer policy)

The summary splits the robot-return gap of ``learned`` into the feature, scale and direction effects and
``learned_pair``'s into the two rewards and their interaction (docs/hri.md, "Session 24"). Written
atomically as JSON.

    python diagnostics/hri_human_model.py --results runs/hri/results.json --seeds 0-4 --out runs/human_0_4.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from precise_evaluation import seed_list

HUMAN_VARIANTS = ("true_weights", "true_direction_learned_norm", "learned", "learned_direction_true_norm",
                  "without_speed", "true_collision_ratio")  # robot on its true r_ld
VARIANTS = ("true",) + HUMAN_VARIANTS + ("learned_robot", "learned_pair")
GOAL, COLLISION, SPEED = 0, 1, 2  # the human's features (gsiirl.games.hri: distance to goal, soft collision, speed)
EFFECTS = (  # (label, variant, reference): the mean paired robot-return difference variant − reference
    ("feature model (true_weights - true)", "true_weights", "true"),
    ("scale (true_direction_learned_norm - true_weights)", "true_direction_learned_norm", "true_weights"),
    ("direction (learned - true_direction_learned_norm)", "learned", "true_direction_learned_norm"),
    ("direction at the true norm (learned_direction_true_norm - true_weights)", "learned_direction_true_norm",
     "true_weights"),
    ("scale at the learned direction (learned - learned_direction_true_norm)", "learned",
     "learned_direction_true_norm"),
    ("speed weight removed (without_speed - learned_direction_true_norm)", "without_speed",
     "learned_direction_true_norm"),
    ("collision ratio fixed (true_collision_ratio - learned_direction_true_norm)", "true_collision_ratio",
     "learned_direction_true_norm"),
)
PAIR_EFFECTS = (  # (label, [(sign, variant)]): the 2 × 2 of learned and true rewards
    ("robot reward (learned_robot - true)", [(1, "learned_robot"), (-1, "true")]),
    ("human reward (learned - true)", [(1, "learned"), (-1, "true")]),
    ("both (learned_pair - true)", [(1, "learned_pair"), (-1, "true")]),
    ("interaction (learned_pair - learned_robot - learned + true)",
     [(1, "learned_pair"), (-1, "learned_robot"), (-1, "learned"), (1, "true")]),
)
REPORTED = ("learner_return", "expert_return", "collision_rate", "goal_rate")


def expert_variants(learned: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """The human-reward variants other than ``true``: learned θe's [S, 3], true weights [3] -> {name: [S, 3]}."""
    learned = np.asarray(learned, np.float64)
    truth = np.asarray(truth, np.float64)
    if learned.ndim != 2 or learned.shape[1] != 3 or truth.shape != (3,):
        raise ValueError(f"learned, truth: expected shapes [S, 3] and [3], got {learned.shape} and {truth.shape}")
    norms = np.linalg.norm(learned, axis=1, keepdims=True)
    if not np.all(norms > 0):
        raise ValueError("learned: every θe must be non-zero (its direction is a variant)")
    true_norm = np.linalg.norm(truth)

    def at_true_norm(theta):
        return theta / np.linalg.norm(theta, axis=1, keepdims=True) * true_norm

    learned_direction = at_true_norm(learned)
    without_speed = learned_direction.copy()
    without_speed[:, SPEED] = 0.0
    collision_ratio = learned_direction.copy()
    collision_ratio[:, COLLISION] = truth[COLLISION] / truth[GOAL] * collision_ratio[:, GOAL]
    return {"true_weights": np.tile(truth, (len(learned), 1)),
            "true_direction_learned_norm": truth / true_norm * norms,
            "learned": learned,
            "learned_direction_true_norm": learned_direction,
            "without_speed": at_true_norm(without_speed),
            "true_collision_ratio": at_true_norm(collision_ratio)}


def human_model_study(results: dict, seeds: list[int], episodes: int,
                      progress=lambda text: None) -> dict[int, dict]:
    """Per seed {"theta_e": {human variant: [3]}, "theta_l": [3], "metrics": {variant: true-reward metrics}}
    (``results``: a loaded ``gsiirl run hri`` results file with a ``gsiirl`` method)."""
    import jax
    import jax.numpy as jnp

    from gsiirl.experiments import hri
    from gsiirl.experiments.runner import merge_options
    from gsiirl.experiments.sample_units import check_seed_batch, seed_group
    from gsiirl.games.hri import HRI_DEFAULTS, true_parameters

    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes: expected a positive integer, got {episodes!r}")
    if results.get("experiment") != "hri" or "gsiirl" not in results.get("methods", {}):
        raise ValueError("results: expected a `gsiirl run hri` results file with a gsiirl method")
    units = results["methods"]["gsiirl"]["seeds"]
    missing = [seed for seed in seeds if str(seed) not in units]
    if missing:
        raise ValueError(f"seeds: {missing} have no gsiirl unit in the results file (it has {sorted(units, key=int)})")
    options = merge_options(hri.DEFAULT_OPTIONS, results["config"]["options"] | {"evaluation_episodes": episodes})
    iterations = int(results["config"]["iterations"])
    nonlinear = [name for name in ("learner_reward_hidden", "expert_reward_hidden") if options[name] is not None]
    if nonlinear:  # θe* = the true linear weights: no MLP parameters to swap in
        raise ValueError(f"results: expected the linear reward models (this study swaps the learned θ's for the "
                         f"true linear weights), the file has {', '.join(f'{n}={options[n]}' for n in nonlinear)}")
    algorithm = hri._build(hri._freeze(options))[1]
    truth = np.asarray(true_parameters({k: options[k] for k in HRI_DEFAULTS})[1], np.float64)
    study: dict[int, dict] = {}
    for group in sorted({seed_group(seed, check_seed_batch(options)) for seed in seeds}):
        # the whole group where the file has it: the vmapped batch is then the run's own
        members = [seed for seed in group if str(seed) in units]
        keys = jnp.stack([jax.random.PRNGKey(seed) for seed in members])
        learned = np.array([[units[str(seed)][f"theta_e_{i}"][-1] for i in range(3)] for seed in members])
        theta_l = jnp.asarray([[units[str(seed)][f"theta_l_{i}"][-1] for i in range(3)] for seed in members],
                              jnp.float32)
        thetas = expert_variants(learned, truth)
        learned_e = jnp.asarray(learned, jnp.float32)
        metrics = {}
        for name, theta_e, robot_true, human_true in (
                [("true", learned_e, True, True)]
                + [(name, jnp.asarray(theta_e, jnp.float32), True, False) for name, theta_e in thetas.items()]
                + [("learned_robot", learned_e, False, True), ("learned_pair", learned_e, False, False)]):
            metrics[name] = algorithm.retrained_evaluations(keys, theta_l, theta_e, iterations,
                                                            true_learner_reward=robot_true,
                                                            true_expert_reward=human_true)
            progress(f"seeds {members[0]}-{members[-1]}: {name} done")
        for index, seed in enumerate(members):
            if seed not in seeds:
                continue
            study[seed] = {"theta_e": {name: theta[index].tolist() for name, theta in thetas.items()},
                           "theta_l": np.asarray(theta_l[index]).tolist(),
                           "metrics": {name: {m: float(rows[index][m]) for m in REPORTED}
                                       for name, rows in metrics.items()}}
    return study


def summary(study: dict[int, dict]) -> str:
    """Mean ± std per variant and the paired effects on the robot return (mean ± std, SE = std/√S)."""
    seeds = sorted(study)
    lines = [f"{len(seeds)} seeds: {seeds}; robot on its true r_ld (but learned_robot, learned_pair), human on the "
             "variant; mean ± std (ddof 0)"]
    for variant in VARIANTS:
        cells = [f"{m} {np.mean(v):.3f} ± {np.std(v):.3f}" for m in REPORTED
                 for v in [[study[s]["metrics"][variant][m] for s in seeds]]]
        lines.append(f"  {variant:<28} " + "   ".join(cells))
    lines.append("paired robot-return effects (mean ± std, SE):")
    combinations = list(PAIR_EFFECTS) + [(label, [(1, variant), (-1, reference)])
                                         for label, variant, reference in EFFECTS]
    for label, terms in combinations:
        effect = np.array([sum(sign * study[s]["metrics"][variant]["learner_return"] for sign, variant in terms)
                           for s in seeds])
        standard_error = effect.std() / np.sqrt(len(seeds))
        lines.append(f"  {label:<76} {effect.mean():+.3f} ± {effect.std():.3f}, SE {standard_error:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, required=True, help="results.json of `gsiirl run hri` with gsiirl")
    parser.add_argument("--seeds", type=seed_list, default=seed_list("0-9"), help="N or N-M (default 0-9)")
    parser.add_argument("--episodes", type=int, default=4096, help="greedy evaluation episodes per policy")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    from gsiirl.io.atomic import atomic_write_bytes

    study = human_model_study(json.loads(args.results.read_text()), args.seeds, args.episodes,
                              progress=lambda text: print(text, flush=True))
    atomic_write_bytes(args.out, json.dumps({str(s): v for s, v in study.items()}, indent=1).encode())
    print(summary(study))


if __name__ == "__main__":
    sys.exit(main())
