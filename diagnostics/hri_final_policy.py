"""Is GSIIRL's HRI robot-return gap to MARL a policy that has not caught up with its rewards?

For each seed: the MARL unit (both true rewards), the GSIIRL unit (the experiment's defaults, seeds in the
experiment's groups, so every number equals ``gsiirl run hri``'s on the same machine), then the final
in-run policy is

* re-evaluated as it is with another PRNG key (the metric's own evaluation noise), and
* trained further, warm-started, on its final learned rewards (θl, θe of the last iteration) for
  ``checkpoints[-1]`` more fine-tunes of the experiment's size, evaluated after each checkpoint.

If the gap were the warm-started policy lagging behind a moving θl, the continued policy would close
it. With ``hypergradient_repeats`` = R > 0 the last iteration's SPSA hypergradient is also re-estimated R
times with fresh random numbers from the same point (same warm starts, θ's and data): the mean over
repeats estimates the expected direction, the spread tells how much of one iteration's step is noise.
With ``precise_episodes`` = N > 0 the final MARL and GSIIRL policies are also evaluated with N episodes,
greedy (Table 1's view) and stochastic (the view of f, which SPSA estimates), one key per seed shared by
both methods (docs/hri.md, "Session 22").
Results (docs/hri.md, "Session 21") are written atomically as JSON; a summary table is printed.

    python diagnostics/hri_final_policy.py --seeds 10-19 --iters 100 --out runs/hri_final_policy.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from precise_evaluation import METRICS, experiment_algorithm, precise_views, seed_list
from precise_evaluation import summary as precise_summary

REPORTED = ("learner_return", "expert_return", "collision_rate", "goal_rate")
_CONTINUE_STREAM, _EVALUATION_STREAM = 777, 778  # fold_in data of this study's own PRNG streams


def final_policy_study(seeds: list[int], iterations: int, checkpoints: list[int], options: dict | None = None,
                       progress=lambda text: None, hypergradient_repeats: int = 0,
                       precise_episodes: int = 0) -> dict[int, dict]:
    """Per seed {"marl": metrics, "in_run": last GSIIRL row, "continued": {n: metrics after n more fine-tunes},
    and with ``hypergradient_repeats`` = R > 0 "hypergradients" [R, n_l] and "direct_gradients" [R, n_l]}: R
    re-estimates of the last iteration's SPSA hypergradient (Lemma 2) and of its ∇θl f part, as lists; with
    ``precise_episodes`` = N > 0 "precise": {"marl" | "gsiirl": {"greedy" | "stochastic": metrics of the final
    policy over N episodes}} (``precise_evaluation.METRICS["hri"]``; ``upper_objective`` is the discounted robot
    return, f of eq. 2; keys as :func:`precise_evaluation.precise_views`).

    ``checkpoints``: increasing fine-tune counts ≥ 0 (0 = the final policy re-evaluated with another key).
    ``options``: HRI options overriding ``gsiirl.experiments.hri.DEFAULT_OPTIONS``.
    """
    import jax
    import jax.numpy as jnp

    from gsiirl.algorithms.sample_based import _params, final_thetas
    from gsiirl.algorithms.seed_batch import fold_in_each, tree_index
    from gsiirl.experiments.sample_units import seed_group

    if not checkpoints or any(b <= a for a, b in zip(checkpoints, checkpoints[1:])) or checkpoints[0] < 0:
        raise ValueError(f"checkpoints: expected increasing fine-tune counts >= 0, got {checkpoints}")
    if isinstance(precise_episodes, bool) or not isinstance(precise_episodes, int) or precise_episodes < 0:
        raise ValueError(f"precise_episodes: expected an integer >= 0, got {precise_episodes!r}")
    algorithm, batch = experiment_algorithm("hri", options)
    groups = sorted({seed_group(seed, batch) for seed in seeds})
    study: dict[int, dict] = {}
    for group in groups:
        keys = jnp.stack([jax.random.PRNGKey(seed) for seed in group])
        marl, marl_states = algorithm.run_seeds("marl", keys, iterations)
        ops = algorithm._ops(len(group) > 1)
        estimate, captured = ops["hypergradient"], {}

        def capture(*arguments):  # the last call's arguments are the last iteration's
            captured["arguments"] = arguments
            return estimate(*arguments)

        ops["hypergradient"] = capture
        try:
            histories, states = algorithm.run_seeds("gsiirl", keys, iterations)
        finally:
            ops["hypergradient"] = estimate
        # the last iteration's p, Δ keys, training keys, then its warm starts, θ's and data
        perturbation, delta_keys, train_keys, *rest = captured["arguments"]
        repeats = [estimate(perturbation, fold_in_each(delta_keys, 1000 + r), fold_in_each(train_keys, 1000 + r), *rest)
                   for r in range(hypergradient_repeats)]
        thetas = [final_thetas(history) for history in histories]
        params = _params(jnp.stack([t[0] for t in thetas])[:, None], jnp.stack([t[1] for t in thetas])[:, None],
                         0.0, 0.0)  # [S, 1]: the model policy's rewards (r_li + r_ld^θl, r_e^θe)
        precise = {}
        if precise_episodes:  # one key per seed, the same for both methods
            precise = {method: precise_views(algorithm, keys, final.actor, precise_episodes, METRICS["hri"])
                       for method, final in (("marl", marl_states), ("gsiirl", states))}
        states = jax.tree_util.tree_map(lambda x: x[:, None], states)  # [S, 1, ...], as params
        continue_keys, evaluation_keys = fold_in_each(keys, _CONTINUE_STREAM), fold_in_each(keys, _EVALUATION_STREAM)
        continued = {}
        for n in range(checkpoints[-1] + 1):
            if n in checkpoints:
                continued[n] = algorithm._group_evaluation(ops, evaluation_keys, tree_index(states, (slice(None), 0)))
            if n < checkpoints[-1]:
                states, _, _ = algorithm._fine_tune(ops, fold_in_each(continue_keys, n), states, params)
        for index, seed in enumerate(group):
            if seed in seeds:
                study[seed] = {"marl": marl[index][-1], "in_run": histories[index][-1],
                               "continued": {n: continued[n][index] for n in checkpoints}}
                if precise:
                    study[seed]["precise"] = {method: {view: {name: values[index] for name, values in metrics.items()}
                                                       for view, metrics in views.items()}
                                              for method, views in precise.items()}
                if repeats:
                    study[seed]["hypergradients"] = [np.asarray(e.hypergradient[index]).tolist() for e in repeats]
                    study[seed]["direct_gradients"] = [np.asarray(e.learner_objective_gradient[index]).tolist()
                                                       for e in repeats]
        progress(f"seeds {group[0]}-{group[-1]} done")
    return study


def summary(study: dict[int, dict]) -> str:
    """Mean ± std (ddof 0) over seeds and the paired gap to MARL, per metric and view (a text table)."""
    seeds = sorted(study)
    checkpoints = sorted(next(iter(study.values()))["continued"])
    lines = [f"{len(seeds)} seeds: {seeds[0]}-{seeds[-1]}"]
    for metric in REPORTED:
        marl = np.array([study[s]["marl"][metric] for s in seeds])  # [seeds]
        views = [("in-run (Table 1's view)", [study[s]["in_run"][metric] for s in seeds])]
        views += [("same policy, other key" if n == 0 else f"+{n} fine-tunes",
                   [study[s]["continued"][n][metric] for s in seeds]) for n in checkpoints]
        lines.append(f"{metric}: MARL {marl.mean():.3f} ± {marl.std():.3f}")
        for name, values in views:
            values = np.array(values)
            gap = values - marl
            lines.append(f"  {name:<26} {values.mean():.3f} ± {values.std():.3f}   paired gap "
                         f"{gap.mean():+.3f} ± {gap.std():.3f}")
    in_run = np.array([study[s]["in_run"]["learner_return"] for s in seeds])
    if 0 in checkpoints:
        again = np.array([study[s]["continued"][0]["learner_return"] for s in seeds])
        lines.append(f"evaluation noise of the robot return (same policy, two keys): mean |difference| "
                     f"{np.abs(in_run - again).mean():.3f}, max {np.abs(in_run - again).max():.3f}")
    if "precise" in study[seeds[0]]:
        lines.append("final policies evaluated precisely (upper_objective = f, the discounted robot return):")
        lines.append(precise_summary({s: {"in_run": {"marl": study[s]["marl"], "gsiirl": study[s]["in_run"]},
                                          "precise": study[s]["precise"]} for s in seeds}))
    if "hypergradients" in study[seeds[0]]:
        lines.append("last iteration's hypergradient re-estimated (R repeats): θl; mean ± standard error of the mean; "
                     "‖mean‖ / mean ‖single estimate‖ (1 = no noise); the same for ∇θl f alone")
        for s in seeds:
            theta_l = [study[s]["in_run"][f"theta_l_{i}"] for i in range(len(study[s]["hypergradients"][0]))]
            parts = []
            for name in ("hypergradients", "direct_gradients"):
                values = np.array(study[s][name])  # [R, n_l]
                mean, error = values.mean(axis=0), values.std(axis=0) / np.sqrt(len(values))
                ratio = np.linalg.norm(mean) / max(np.linalg.norm(values, axis=1).mean(), 1e-12)
                parts.append(" ".join(f"{m:+.2f}±{e:.2f}" for m, e in zip(mean, error)) + f" ({ratio:.2f})")
            lines.append(f"  seed {s}: θl {np.round(theta_l, 2).tolist()}  ∇F {parts[0]}  ∇θl f {parts[1]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=seed_list, default=seed_list("10-19"), help="N or N-M (default 10-19)")
    parser.add_argument("--iters", type=int, default=100, help="outer iterations (default 100)")
    parser.add_argument("--checkpoints", default="0,1,2,5,10,25,50,100",
                        help="fine-tune counts at which the continued policy is evaluated")
    parser.add_argument("--hypergradient-repeats", type=int, default=16,
                        help="re-estimates of the last iteration's hypergradient (0: none)")
    parser.add_argument("--precise-episodes", type=int, default=0,
                        help="also evaluate the final MARL and GSIIRL policies, greedy and stochastic, with this "
                             "many episodes (0: not)")
    parser.add_argument("--option", action="append", default=[], help="HRI option key=value (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    from gsiirl.cli.main import parse_options
    from gsiirl.io.atomic import atomic_write_bytes

    study = final_policy_study(args.seeds, args.iters, [int(n) for n in args.checkpoints.split(",")],
                               parse_options(args.option), progress=lambda text: print(text, flush=True),
                               hypergradient_repeats=args.hypergradient_repeats,
                               precise_episodes=args.precise_episodes)
    atomic_write_bytes(args.out, json.dumps({str(s): v for s, v in study.items()}, indent=1).encode())
    print(summary(study))


if __name__ == "__main__":
    sys.exit(main())
