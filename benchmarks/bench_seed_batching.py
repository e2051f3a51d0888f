"""Benchmark (not a test): does vmapping seeds in one process beat one seed per process?

    python benchmarks/bench_seed_batching.py [--batches 1 2 10 20] [--skip-mpe]

For the unit of work that dominates each experiment, the wall time *per batch member* when B members
(seeds, or SPSA perturbations) are vmapped into one jitted call, as a ratio to B = 1 measured in the
same run. A ratio well below 1 at B = 10 means batching seeds in one process would pay; a ratio ≈ 1
means the computation is already compute-bound on this CPU and seeds are better spread over processes
(``--backend process``), which is what the runner does.

* security: one tabular lower-level evaluation (soft-Nash solve + Lemma 1/3 gradients + f) on the
  8-node attack graph (256 states, 10 × 10 actions, T = 10), ``gsiirl.algorithms.gsiirl.batched_evaluation``;
* hri / mpe: one warm-started MADDPG fine-tune + measurement (``SampleBasedGSIIRL._step``) with the
  experiments' default options.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).parent))
from _timing import median_seconds, print_table  # noqa: E402


def security_unit(batch: int):
    from gsiirl.algorithms.config import FitConfig
    from gsiirl.algorithms.gsiirl import batched_evaluation
    from gsiirl.algorithms.lower_level import LowerLevelProblem
    from gsiirl.experiments import security

    options = dict(security.DEFAULT_OPTIONS)
    _, game, model = security.build_instance(options, 0)
    config = FitConfig.from_options(**{k: options[k] for k in security._FIT_DEFAULTS})
    problem = LowerLevelProblem(game, model, model, equilibrium=config.equilibrium, temperature=config.temperature,
                                regularization=config.regularization, iterations=config.iterations)
    size = model.init(jax.random.PRNGKey(0), 1.0).shape[0]
    data = jnp.full((game.horizon,) + tuple(game.joint_shape), 1.0 / (game.joint_shape[0] * game.joint_shape[1]
                                                                       * game.joint_shape[2]))
    thetas = 0.3 * jax.random.normal(jax.random.PRNGKey(1), (batch, size))
    # GSIIRL's SPSA evaluations use Lemmas 1/3 (FitConfig's "auto" resolves to them for GSIIRL)
    method = "lemma1" if config.lower_gradient == "auto" else config.lower_gradient
    return lambda: batched_evaluation(problem, method, thetas, thetas, data)


def sample_based_unit(experiment: str, batch: int):
    from gsiirl.algorithms.sample_based import _params
    from gsiirl.solvers.maddpg import init_state

    if experiment == "mpe":
        from gsiirl.experiments import mpe

        backend = mpe.make_backend(dict(mpe.DEFAULT_OPTIONS))
    else:
        from gsiirl.experiments import hri

        backend = hri._build(hri._freeze(dict(hri.DEFAULT_OPTIONS)))[1]
    game = backend.game
    states = jax.vmap(lambda k: init_state(k, game, backend.config.maddpg))(
        jax.random.split(jax.random.PRNGKey(0), batch))
    params = _params(jnp.zeros((batch, game.learner_feature_size)), jnp.zeros((batch, game.expert_feature_size)),
                     1.0, 1.0)
    return lambda: backend._step(jax.random.PRNGKey(1), states, params)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 10, 20])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-mpe", action="store_true", help="skip the MPE unit (needs the [mpe] extra)")
    args = parser.parse_args()
    experiments = ["security", "hri"] + ([] if args.skip_mpe else ["mpe"])
    rows = []
    for experiment in experiments:
        reference = None
        for batch in args.batches:
            unit = security_unit(batch) if experiment == "security" else sample_based_unit(experiment, batch)
            per_member = median_seconds(unit, repeats=args.repeats) / batch
            reference = reference or per_member
            rows.append([experiment, batch, per_member * 1000, per_member / reference])
            print(f"{experiment} B={batch}: {per_member * 1000:.1f} ms per member", flush=True)
    print()
    print_table(["unit", "batch B", "ms per member", f"ratio to B = {args.batches[0]}"], rows)


if __name__ == "__main__":
    main()
