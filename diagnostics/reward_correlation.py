"""How closely do the learned rewards track the true ones, whatever the reward model (linear or MLP)?

Reads a ``gsiirl run hri|mpe`` results file. For every GSIIRL / MA-IRL seed it takes the θ's recorded at the
first and at the last outer iteration, and computes over the steps of ``--episodes`` episodes of uniformly
random play (one fixed key, the same steps for every seed and method) the Pearson correlation between

    the learned expert reward r_e^θe(φ_e)   and the true r_e,
    the learned r_ld^θl(φ_l)                and the queried r_ld.

A correlation is blind to scale and offset (the likelihood's temperature and the ball fix the scale; an
offset does not change a policy), so it measures the *shape* of a learned reward; the ratio of the two rewards'
standard deviations over the same steps measures its strength. Written atomically as JSON.

    python diagnostics/reward_correlation.py --results runs/hri/results.json --out runs/hri_correlation.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

THETA_PREFIXES = {"learner": "theta_l_", "expert": "theta_e_"}


def thetas_at(history: dict, prefix: str, iteration: int) -> np.ndarray:
    """θ [P] recorded at ``iteration`` (0-based; −1 the last) of one seed's history {metric: [K values]}."""
    names = sorted((name for name in history if name.startswith(prefix)), key=lambda name: int(name[len(prefix):]))
    if not names:
        raise ValueError(f"results: expected {prefix}* metrics in a GSIIRL / MA-IRL unit")
    return np.asarray([history[name][iteration] for name in names], np.float32)


def random_play(game, episodes: int, seed: int = 0):
    """The steps of ``episodes`` episodes of uniformly random play: a Rollout."""
    import jax

    from gsiirl.games import continuous

    return continuous.random_play(jax.random.PRNGKey(seed), game, episodes)


def correlations(game, data, theta_l: np.ndarray, theta_e: np.ndarray) -> dict[str, float]:
    """{"expert": corr(r_e^θe, r_e), "learner": corr(r_ld^θl, r_ld)} over the alive steps of ``data``, and each
    learned reward's standard deviation over those steps relative to the true one's (``*_spread_ratio``: how
    strongly the learned reward separates the steps; a policy's softmax sees this scale)."""
    from gsiirl.games.continuous import modelled_rewards, reward_models

    alive = np.asarray(data.alive) > 0
    model_l, model_e = reward_models(game)
    pairs = {"expert": (modelled_rewards(model_e, theta_e, data.expert_features, data.alive), data.expert_reward),
             "learner": (modelled_rewards(model_l, theta_l, data.learner_features, data.alive),
                         data.learner_dependent_reward)}
    out = {}
    for team, (learned, true) in pairs.items():
        learned, true = np.asarray(learned)[alive], np.asarray(true)[alive]
        out[team] = float(np.corrcoef(learned, true)[0, 1]) if learned.std() > 0 and true.std() > 0 else float("nan")
        out[f"{team}_spread_ratio"] = float(learned.std() / true.std()) if true.std() > 0 else float("nan")
    return out


def run_game(results: dict):
    """The game a results file was made with (its experiment and stored options, reward models included)."""
    from gsiirl.experiments import hri, mpe
    from gsiirl.experiments.runner import merge_options

    experiment = results.get("experiment")
    if experiment not in ("hri", "mpe"):
        raise ValueError(f"results: expected an hri or mpe results file, got experiment {experiment!r}")
    module = {"hri": hri, "mpe": mpe}[experiment]
    merged = merge_options(module.DEFAULT_OPTIONS, results["config"]["options"])
    return hri.make_game(merged) if experiment == "hri" else mpe.make_backend(merged).game


def study(results: dict, episodes: int) -> dict:
    """{method: {seed: {"first" | "last": {"expert": r, "learner": r}}}} and a per-method summary."""
    game = run_game(results)
    data = random_play(game, episodes)
    out = {}
    for method in ("gsiirl", "ma-irl"):
        if method not in results["methods"]:
            continue
        per_seed = {}
        for seed, history in sorted(results["methods"][method]["seeds"].items(), key=lambda item: int(item[0])):
            per_seed[seed] = {when: correlations(game, data, thetas_at(history, THETA_PREFIXES["learner"], index),
                                                 thetas_at(history, THETA_PREFIXES["expert"], index))
                              for when, index in (("first", 0), ("last", -1))}
        summary = {f"{when}_{team}": [float(np.mean(values)), float(np.std(values))]
                   for when in ("first", "last") for team in ("expert", "learner", "expert_spread_ratio",
                                                               "learner_spread_ratio")
                   for values in [[seed_values[when][team] for seed_values in per_seed.values()]]}
        out[method] = {"seeds": per_seed, "mean_std": summary}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, required=True, help="a gsiirl run hri|mpe results.json")
    parser.add_argument("--episodes", type=int, default=1024, help="episodes of uniformly random play")
    parser.add_argument("--out", type=Path, required=True, help="where to write the JSON")
    args = parser.parse_args(argv)
    if args.episodes < 2:
        parser.error(f"--episodes: expected an integer >= 2, got {args.episodes}")
    from gsiirl.io.atomic import atomic_write_bytes

    results = json.loads(args.results.read_text())
    out = study(results, args.episodes)
    atomic_write_bytes(args.out, json.dumps({"results": str(args.results), "episodes": args.episodes,
                                             "methods": out}, indent=1).encode())
    for method, values in out.items():
        cells = ", ".join(f"{name} {mean:.3f} ± {std:.3f}" for name, (mean, std) in values["mean_std"].items())
        print(f"{method}: {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
