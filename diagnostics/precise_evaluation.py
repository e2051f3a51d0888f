"""How much of a Table 1 cell is evaluation noise? The final policies evaluated again with many episodes.

For ``--experiment mpe`` or ``hri``: each method's units run exactly as ``gsiirl run EXPERIMENT`` runs them
(the experiment's seed groups, PRNG key ``PRNGKey(seed)``, its default options plus ``--option``), so the
in-run numbers are Table 1's; then every final joint policy is evaluated with N episodes, greedy (Table 1's
view, which uses the option ``evaluation_episodes``, 256) and stochastic (the view of f, eq. 2, which the
SPSA estimate uses), with one key per seed that all methods share. GSIIRL's interaction pair (the learner's
policy met by the simulated expert's true-reward response, its ``interaction_*`` metrics) is evaluated the same
way as the pseudo-method ``gsiirl_interaction``. Written atomically as JSON; a summary with paired gaps to MARL
is printed (docs/mpe.md and docs/hri.md, "Session 22" and "Session 23").

    python diagnostics/precise_evaluation.py --experiment mpe --seeds 0-4 --episodes 4096 --out runs/p.json
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import numpy as np

PRECISE_STREAM = 999  # fold_in data of the precise evaluation's keys (a stream no run uses)
INTERACTION = "gsiirl_interaction"  # GSIIRL's interaction pair, reported like a method
METRICS = {"mpe": ("learner_return", "upper_objective", "expert_return"),
           "hri": ("learner_return", "upper_objective", "expert_return", "collision_rate", "goal_rate")}


@functools.lru_cache(maxsize=None)
def _measure(algorithm, greedy: bool, episodes: int):
    """The jitted, seed-vmapped evaluation of one view, compiled once per (algorithm, view, episodes) — not
    again for every method and seed group."""
    import jax

    return jax.jit(jax.vmap(lambda key, actor: algorithm._measure_impl(key, actor, greedy, episodes)))


def precise_views(algorithm, keys, actors, episodes: int, names: tuple[str, ...]) -> dict[str, dict[str, list]]:
    """{"greedy" | "stochastic": {name: [S] values}} of the joint policies ``actors`` (stacked over S seeds)
    evaluated with ``episodes`` episodes each, seed s with ``fold_in(keys[s], PRECISE_STREAM)``."""
    from gsiirl.algorithms.seed_batch import fold_in_each

    evaluation_keys = fold_in_each(keys, PRECISE_STREAM)
    views = {}
    for view, greedy in (("greedy", True), ("stochastic", False)):
        measured = _measure(algorithm, greedy, episodes)(evaluation_keys, actors)
        views[view] = {name: np.asarray(measured[name]).tolist() for name in names}
    return views


def experiment_algorithm(experiment: str, options: dict | None):
    """(the experiment's SampleBasedGSIIRL for these options, its seed_batch)."""
    from gsiirl.experiments import hri, mpe
    from gsiirl.experiments.runner import merge_options
    from gsiirl.experiments.sample_units import check_seed_batch

    if experiment not in METRICS:
        raise ValueError(f"experiment: expected one of {sorted(METRICS)}, got {experiment!r}")
    module = {"mpe": mpe, "hri": hri}[experiment]
    merged = merge_options(module.DEFAULT_OPTIONS, options)
    batch = check_seed_batch(merged)
    if experiment == "hri":
        return hri._build(hri._freeze(merged))[1], batch
    return mpe.make_backend(merged), batch


def precise_study(experiment: str, seeds: list[int], iterations: int, episodes: int,
                  methods: tuple[str, ...] = ("marl", "gsiirl"), options: dict | None = None,
                  progress=lambda text: None) -> dict[int, dict]:
    """Per seed {"in_run": {method: last metrics row}, "precise": {method: {view: {name: value}}}}."""
    import jax
    import jax.numpy as jnp

    from gsiirl.algorithms.sample_based import INTERACTION_PREFIX
    from gsiirl.experiments.sample_units import seed_group

    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes: expected a positive integer, got {episodes!r}")
    if "marl" not in methods:
        raise ValueError(f"methods: expected 'marl' among them (the gaps are to MARL), got {methods}")
    algorithm, batch = experiment_algorithm(experiment, options)
    study: dict[int, dict] = {}
    for group in sorted({seed_group(seed, batch) for seed in seeds}):
        keys = jnp.stack([jax.random.PRNGKey(seed) for seed in group])
        in_run, precise = {}, {}
        for method in methods:
            histories, states = algorithm.run_seeds(method, keys, iterations,
                                                    final_pair="both" if method == "gsiirl" else "model")
            in_run[method] = [history[-1] for history in histories]
            pairs = {method: states}
            if method == "gsiirl":
                pairs = {method: states["model"], INTERACTION: states["interaction"]}
                in_run[INTERACTION] = [{name[len(INTERACTION_PREFIX):]: value for name, value in row.items()
                                        if name.startswith(INTERACTION_PREFIX)} for row in in_run[method]]
            for name, pair in pairs.items():
                precise[name] = precise_views(algorithm, keys, pair.actor, episodes, METRICS[experiment])
            progress(f"seeds {group[0]}-{group[-1]}: {method} done")
        for index, seed in enumerate(group):
            if seed in seeds:
                study[seed] = {"in_run": {method: rows[index] for method, rows in in_run.items()},
                               "precise": {method: {view: {name: values[index] for name, values in metrics.items()}
                                                    for view, metrics in views.items()}
                                           for method, views in precise.items()}}
    return study


def summary(study: dict[int, dict]) -> str:
    """Per metric and view: mean ± std over seeds (ddof 0) per method and its paired gap to MARL, with the
    in-run (Table 1) value of the returns for comparison."""
    seeds = sorted(study)
    methods = list(study[seeds[0]]["precise"])
    names = list(study[seeds[0]]["precise"]["marl"]["greedy"])
    lines = [f"{len(seeds)} seeds: {seeds[0]}-{seeds[-1]}; mean ± std, paired gap to MARL ± std, seeds below MARL"]

    def row(label, values_of):
        marl = np.array([values_of("marl", s) for s in seeds])
        parts = [f"MARL {marl.mean():.3f} ± {marl.std():.3f}"]
        for method in methods:
            if method != "marl":
                values = np.array([values_of(method, s) for s in seeds])
                gap = values - marl
                parts.append(f"{method} {values.mean():.3f} ± {values.std():.3f} (gap {gap.mean():+.3f} ± "
                             f"{gap.std():.3f}, {int((gap < 0).sum())} below)")
        lines.append(f"  {label:<36} " + "   ".join(parts))

    for name in names:
        if name in study[seeds[0]]["in_run"]["marl"]:
            row(f"{name}, in-run (Table 1)", lambda m, s: study[s]["in_run"][m][name])
        for view in ("greedy", "stochastic"):
            row(f"{name}, {view}", lambda m, s: study[s]["precise"][m][view][name])
    return "\n".join(lines)


def seed_list(text: str) -> list[int]:
    """``--seeds`` of the diagnostics: "N" or "N-M" (inclusive) -> [N, ..., M]."""
    first, _, last = text.partition("-")
    try:
        seeds = list(range(int(first), int(last or first) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds: expected N or N-M, got {text!r}") from None
    if not seeds or seeds[0] < 0:
        raise argparse.ArgumentTypeError(f"--seeds: expected non-negative N or N-M with N <= M, got {text!r}")
    return seeds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", choices=sorted(METRICS), required=True)
    parser.add_argument("--seeds", type=seed_list, default=seed_list("0-9"), help="N or N-M (default 0-9)")
    parser.add_argument("--iters", type=int, default=None, help="outer iterations (default: MPE 50, HRI 100)")
    parser.add_argument("--episodes", type=int, default=4096, help="episodes per precise evaluation")
    parser.add_argument("--methods", default="marl,gsiirl", help="comma-separated, MARL included")
    parser.add_argument("--option", action="append", default=[], help="experiment option key=value (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    from gsiirl.cli.main import parse_options
    from gsiirl.io.atomic import atomic_write_bytes

    iterations = {"mpe": 50, "hri": 100}[args.experiment] if args.iters is None else args.iters
    study = precise_study(args.experiment, args.seeds, iterations, args.episodes, tuple(args.methods.split(",")),
                          parse_options(args.option), progress=lambda text: print(text, flush=True))
    atomic_write_bytes(args.out, json.dumps({str(s): v for s, v in study.items()}, indent=1).encode())
    print(summary(study))


if __name__ == "__main__":
    sys.exit(main())
