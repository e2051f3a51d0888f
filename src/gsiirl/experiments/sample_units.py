"""Seed groups for the sample-based experiments (HRI, MPE): the runner's unit is a group of seeds.

Seeds are grouped as [g·B, (g+1)·B) for the option ``seed_batch`` = B, and a group is always computed
whole, in one vmapped batch (:meth:`SampleBasedGSIIRL.run_seeds`): float32 rounding depends on the
batch, so fixing the groups makes a seed's numbers independent of ``--seeds`` and of resumes.
B = 1 is exactly the per-seed computation.
"""

from __future__ import annotations

from typing import Callable

# the options choosing the reward models: None = linear (scale · φ·θ, the paper's); an integer k = a tanh MLP with
# k hidden units over the same features (gsiirl.rewards.feature_models.MLPFeatureReward)
REWARD_MODEL_OPTIONS = {"learner_reward_hidden": None, "expert_reward_hidden": None}
# Results files written before an option existed: ``seed_batch`` — one seed at a time; no reset check; the
# linear reward models.
OPTION_VALUES_BEFORE_ADDED = {"seed_batch": 1, "reset_worse_than_random": False, "ma_irl_gradient": "joint",
                              **REWARD_MODEL_OPTIONS}


def check_reward_hidden(options: dict) -> None:
    """ValueError naming ``*_reward_hidden`` unless each is null or a positive integer."""
    for name in REWARD_MODEL_OPTIONS:
        hidden = options[name]
        if hidden is not None and (isinstance(hidden, bool) or not isinstance(hidden, int) or hidden < 1):
            raise ValueError(f"option {name}: expected null (the linear model) or a positive integer "
                             f"(an MLP's hidden units), got {hidden!r}")


def with_reward_models(game, options: dict):
    """``game`` with the reward models of options ``*_reward_hidden``: an MLP over the team's features scaled by
    the game's ``*_reward_scale`` (which then becomes 1: the model carries it); unchanged for null (linear)."""
    from gsiirl.rewards.feature_models import MLPFeatureReward

    check_reward_hidden(options)
    fields = {}
    for team in ("learner", "expert"):
        hidden = options[f"{team}_reward_hidden"]
        if hidden is not None:
            fields[f"{team}_reward_model"] = MLPFeatureReward(
                getattr(game, f"{team}_feature_size"), hidden=hidden, scale=getattr(game, f"{team}_reward_scale"))
            fields[f"{team}_reward_scale"] = 1.0
    return game._replace(**fields)


def check_seed_batch(options: dict) -> int:
    """The validated ``seed_batch`` option (a positive integer)."""
    value = options["seed_batch"]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"seed_batch: expected a positive integer (seeds vmapped together), got {value!r}")
    return value


def seed_group(seed: int, batch: int) -> tuple[int, ...]:
    """The fixed group of ``seed``: (g·B, …, g·B + B − 1) with g = seed // B."""
    first = (int(seed) // batch) * batch
    return tuple(range(first, first + batch))


def unit_runner_from_groups(make_group_runner: Callable, default_options: dict, options: dict | None):
    """The per-seed runner contract, ``run(method, seed, iterations, progress) -> {metric: [...]}``, on top
    of an experiment's group runner: it computes the seed's whole fixed group, so its numbers are the
    runner's."""
    from gsiirl.experiments.runner import merge_options

    batch = check_seed_batch(merge_options(default_options, options))
    run_group = make_group_runner(options)

    def run(method: str, seed: int, iterations: int, progress: Callable[[int], None]) -> dict[str, list[float]]:
        group = seed_group(seed, batch)
        return run_group(method, group, iterations, progress)[group.index(int(seed))]

    return run


def run_seed_group(algorithm, method: str, seeds: tuple[int, ...], iterations: int,
                   progress: Callable[[int], None], retrain: bool, checkpoint=None) -> tuple[list[dict], object, object]:
    """Run ``method`` for ``seeds`` as one batch (PRNG key of seed s = PRNGKey(s)), continuing from and
    saving to ``checkpoint`` if given (``SampleBasedGSIIRL.run_seeds``; the retraining in its part
    ``"retraining"``).

    Returns (per seed: {metric: [per-iteration values]} incl. ``retrained_*`` if ``retrain``, the final
    joint MADDPG states [S], the keys [S, 2])."""
    import jax
    import jax.numpy as jnp

    from gsiirl.algorithms.sample_based import final_thetas

    keys = jnp.stack([jax.random.PRNGKey(int(seed)) for seed in seeds])
    histories, states = algorithm.run_seeds(method, keys, int(iterations), lambda k, metrics: progress(k),
                                            checkpoint=checkpoint)
    results = []
    for history in histories:
        names = sorted({name for metrics in history for name in metrics})
        results.append({name: [float(metrics.get(name, float("nan"))) for metrics in history] for name in names})
    if method != "marl" and retrain:
        from gsiirl.algorithms.run_state import as_run_state

        thetas = [final_thetas(history) for history in histories]
        retrained = algorithm.retrained_evaluations(
            keys, jnp.stack([t[0] for t in thetas]), jnp.stack([t[1] for t in thetas]), int(iterations),
            checkpoint=None if checkpoint is None else as_run_state(checkpoint).part("retraining"))
        for result, metrics in zip(results, retrained):
            result.update({f"retrained_{name}": [float(value)] for name, value in metrics.items()})
    return results, states, keys
