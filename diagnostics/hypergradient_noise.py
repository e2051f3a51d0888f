"""Is there signal in one outer step? The SPSA hypergradient's spread at fixed points of a GSIIRL run.

For ``--experiment mpe`` or ``hri``: one GSIIRL unit runs exactly as ``gsiirl run EXPERIMENT`` runs a group of one
seed (its default options plus ``--option``; PRNG key ``PRNGKey(seed)``; HRI, which groups five seeds by default,
needs ``--option seed_batch=1``). At each outer iteration named in ``--at``
(0-based) the estimate of that iteration (Algorithm 1, lines 10-14) is repeated ``--repeats`` times at the same
point (same θl, θe, warm-started policies and data), each with its own perturbation draws Δ and its own
fine-tune key; then the run goes on with its own estimate, so the run itself is unchanged. Per point it reports
the mean of the R estimates of ∇F (the step direction) and of ∇θl f (its direct part), their spread, and

    signal_to_noise = ‖mean‖ / sqrt(mean ‖g_r − mean‖²)   (per single estimate, i.e. per outer step),

so the K outer steps drift by ≈ K·‖mean‖ and diffuse by ≈ √K·spread: with K = 50 the drift wins only if the
ratio is above ≈ 1/√K = 0.14. ‖mean‖ of R pure-noise estimates is ≈ spread/√R, so the raw ratio is ≥ ≈ 1/√R
even without any signal; ``signal_to_noise_debiased`` removes that part (‖mean‖² − spread²/(R − 1), floored
at 0). ``--true-theta-l`` (comma-separated) adds ``towards_truth``: the mean ± standard error over the R
estimates of their component along the unit direction θl* − θl (positive: the expected step approaches the
truth), and the cosine of the mean with that direction. The R estimates themselves are stored too. Written
atomically as JSON.

    python diagnostics/hypergradient_noise.py --experiment mpe --seed 0 --at 5,25,45 --repeats 32 \\
        --true-theta-l 1,0,0,0,0,0 --out runs/noise.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from precise_evaluation import experiment_algorithm

REPEAT_STREAM = 777  # fold_in data of the repeats' keys (a stream no run uses)


def spread(samples: np.ndarray, towards: np.ndarray | None = None) -> dict:
    """{"samples" [R, P], "mean" [P], "norm_of_mean", "spread" (root mean squared distance to the mean),
    "signal_to_noise", "signal_to_noise_debiased"} of samples [R, P] (R ≥ 2); with ``towards`` [P] (a nonzero
    direction) also {"towards_truth": {"mean", "standard_error"} of the samples' components along it,
    "cosine_to_truth": of the mean}."""
    samples = np.asarray(samples, np.float64)
    repeats = samples.shape[0]
    mean = samples.mean(axis=0)
    noise = float(np.sqrt(np.mean(np.sum((samples - mean) ** 2, axis=1))))
    norm = float(np.linalg.norm(mean))
    signal = float(np.sqrt(max(norm ** 2 - noise ** 2 / (repeats - 1), 0.0)))
    ratio = lambda value: value / noise if noise > 0 else float("inf")
    out = {"samples": samples.tolist(), "mean": mean.tolist(), "norm_of_mean": norm, "spread": noise,
           "signal_to_noise": ratio(norm), "signal_to_noise_debiased": ratio(signal)}
    if towards is not None:
        unit = np.asarray(towards, np.float64) / np.linalg.norm(towards)
        components = samples @ unit
        out["towards_truth"] = {"mean": float(components.mean()),
                                "standard_error": float(components.std(ddof=1) / np.sqrt(repeats))}
        out["cosine_to_truth"] = float(mean @ unit / norm) if norm > 0 else 0.0
    return out


def noise_study(experiment: str, seed: int, iterations: int, at: list[int], repeats: int,
                options: dict | None = None, true_theta_l: np.ndarray | None = None,
                progress=lambda text: None) -> dict:
    """{"points": [{iteration, theta_l, hypergradient: spread(), direct: spread()}], "history": the unit's
    per-iteration metrics}; ``true_theta_l`` [P] adds each spread's ``towards_truth`` and ``cosine_to_truth``."""
    import jax

    from gsiirl.algorithms.seed_batch import fold_in_each

    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 2:
        raise ValueError(f"repeats: expected an integer >= 2, got {repeats!r}")
    bad = [k for k in at if not 0 <= k < iterations]
    if bad or not at:
        raise ValueError(f"at: expected outer iterations in [0, {iterations}), got {at!r}")
    algorithm, batch = experiment_algorithm(experiment, options)
    if batch != 1:  # a seed's numbers depend on its group (docs/design_decisions.md, "Seeds in one process")
        raise ValueError(f"seed_batch: expected 1, since this diagnostic runs one seed as its own group, got {batch}; "
                         "pass --option seed_batch=1")
    learner_size = algorithm.initial_parameters(jax.random.PRNGKey(0))[0].shape
    if true_theta_l is not None and np.shape(true_theta_l) != learner_size:
        raise ValueError(f"true_theta_l: expected {learner_size[0]} weights (θl's size), got {np.shape(true_theta_l)}")
    ops = algorithm._ops(False)  # the one-seed forms run() uses (cached on the back-end)
    original = ops["hypergradient"]
    points, calls = [], [0]

    def repeated(perturbation, key, spsa_key, model_state, interaction_state, theta_l, *rest):
        k = calls[0]
        calls[0] += 1
        if k in at:
            direct, full = [], []
            for r in range(repeats):
                estimate = original(perturbation, fold_in_each(key, REPEAT_STREAM + r),
                                    fold_in_each(spsa_key, REPEAT_STREAM + r), model_state, interaction_state,
                                    theta_l, *rest)
                full.append(np.asarray(estimate.hypergradient[0]))
                direct.append(np.asarray(estimate.learner_objective_gradient[0]))
            towards = None if true_theta_l is None else (np.asarray(true_theta_l, np.float64)
                                                         - np.asarray(theta_l[0], np.float64))
            point = {"iteration": k, "theta_l": np.asarray(theta_l[0]).tolist(),
                     "hypergradient": spread(np.stack(full), towards), "direct": spread(np.stack(direct), towards)}
            points.append(point)
            progress(f"iteration {k}: signal/noise {point['hypergradient']['signal_to_noise_debiased']:.3f}")
        return original(perturbation, key, spsa_key, model_state, interaction_state, theta_l, *rest)

    ops["hypergradient"] = repeated
    try:
        history, _ = algorithm.run("gsiirl", jax.random.PRNGKey(seed), iterations)
    finally:
        ops["hypergradient"] = original
    return {"points": points, "history": history}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", choices=("mpe", "hri"), required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iters", type=int, default=None, help="outer iterations (default: MPE 50, HRI 100)")
    parser.add_argument("--at", required=True, help="comma-separated outer iterations (0-based)")
    parser.add_argument("--repeats", type=int, default=32)
    parser.add_argument("--true-theta-l", default=None, help="comma-separated θl* (optional)")
    parser.add_argument("--option", action="append", default=[], help="experiment option key=value (repeatable)")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    from gsiirl.cli.main import parse_options
    from gsiirl.io.atomic import atomic_write_bytes

    iterations = {"mpe": 50, "hri": 100}[args.experiment] if args.iters is None else args.iters
    truth = None if args.true_theta_l is None else np.array([float(v) for v in args.true_theta_l.split(",")])
    study = noise_study(args.experiment, args.seed, iterations, [int(v) for v in args.at.split(",")], args.repeats,
                        parse_options(args.option), truth, progress=lambda text: print(text, flush=True))
    atomic_write_bytes(args.out, json.dumps(study, indent=1).encode())
    for point in study["points"]:
        full, direct = point["hypergradient"], point["direct"]
        towards = full.get("towards_truth")
        print(f"iteration {point['iteration']}: ∇F ‖mean‖ {full['norm_of_mean']:.3f}, spread {full['spread']:.3f}, "
              f"signal/noise {full['signal_to_noise']:.3f} (debiased {full['signal_to_noise_debiased']:.3f}); "
              f"∇θl f debiased {direct['signal_to_noise_debiased']:.3f}"
              + (f"; along θl* − θl {towards['mean']:+.3f} ± {towards['standard_error']:.3f}" if towards else ""))


if __name__ == "__main__":
    sys.exit(main())
