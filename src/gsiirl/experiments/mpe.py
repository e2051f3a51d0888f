"""MPE physical deception experiment (paper §8, Figure 2, Table 1 MPE column; docs/mpe.md).

Units follow the runner contract: ``make_unit_runner(options)(method, seed, iterations, progress)``
returns per-iteration metric lists; ``make_figure(results, out_dir)`` draws Figure 2 (agents' return
and adversary's return against the outer iteration, MARL as horizontal lines, mean ± std over seeds).

All three methods run through the shared sample-based back-end (gsiirl.algorithms.sample_based) with
the JAX MADDPG (gsiirl.solvers.maddpg), policies warm-started across outer iterations:

* ``marl``: MADDPG on both TRUE rewards; one value per seed (a horizontal line);
* ``gsiirl``: Algorithm 1 with SPSA hypergradients; ``ma-irl``: passive maximum likelihood on
  demonstrations of the MARL policies.

Metrics are ground-truth cumulative rewards per 25-step episode (undiscounted, as MPE reports them) of
the joint policy trained on the current rewards, averaged over ``evaluation_episodes`` episodes. GSIIRL
and MA-IRL units also store ``retrained_*`` final metrics (option ``retrain_evaluation``): a policy
retrained from scratch on the final learned rewards with the MARL unit's budget and random numbers.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Callable

from gsiirl.algorithms.sample_based_config import MA_IRL_GRADIENTS
from gsiirl.experiments import sample_units
from gsiirl.validation import is_positive_number

# resuming results files written before these options existed (the values they were made with)
OPTION_VALUES_BEFORE_ADDED = {**sample_units.OPTION_VALUES_BEFORE_ADDED, "minibatch_size": 256, "critics": "agent",
                              "critic_input": "joint", "max_hypergradient_norm": None,
                              # before the option the implicit term's Hessian ridge was λ
                              "hessian_regularization": lambda stored: stored.get("regularization", 1.0),
                              # the initial draws used the ball's radius before initial_radius existed
                              "initial_radius": lambda stored: stored.get("radius", 1.0)}

DEFAULT_OPTIONS: dict = {
    "feature_scale": 1.0,  # r^θ = feature_scale · φ·θ; true θe* = (−1, 0, …, 0) (docs/mpe.md)
    "discount": 0.95,  # training discount; reported returns are undiscounted 25-step sums
    "hidden": 64,
    "num_envs": 64,
    "learning_rate": 3e-3,
    "updates_per_cycle": 32,
    "minibatch_size": 128,  # MADDPG minibatch (256 until session 8): the update cost is linear in it, results held (docs/mpe.md)
    "critic_input": "joint",  # MADDPG critic: "joint" Q_i(s, a) or "others" Q_i(s, a_-i) -> own-action values
    "critics": "agent",  # MADDPG critics: one per "agent" (Lowe et al.) or one per "team" (the good agents share a return)
    "policy_temperature": 0.05,  # MADDPG entropy bonus; 0.01 collapses policies that then never recover (docs/mpe.md)
    "actor_gradient": "expected",
    "exploration": 0.1,  # MADDPG behaviour policy: a uniformly random action with this probability per agent
    "cycles_per_train": 4,  # MADDPG cycles per warm-started fine-tune (one per outer step / inner step)
    "warmup_cycles": 160,  # MADDPG cycles from scratch before the first outer iteration
    "data_episodes": 256,
    "evaluation_episodes": 256,
    "radius": 1.5,  # the feasible ball: the true θ's (norm 1) strictly inside, as in HRI (1.0 until session 13; docs/mpe.md)
    "initial_radius": 1.0,  # random initial θ's have norms in [0.5, 1]·this (unchanged by session 13's radius)
    # λ of the inner loop (Lemma 1): 0.1 since 0.6.0, 1.0 before (pre-registered test, docs/mpe.md "Session 42b":
    # the learned θe reaches the truth's size and GSIIRL's adversary gap closes, MA-IRL's does not (Session 43);
    # the SPSA Hessian's ridge stays 1.0)
    "regularization": 0.1,
    # the ridge (eigenvalue floor) of the implicit term's SPSA Hessian, λ's value (1.0) until session 42 (a ridge of
    # 0.01 gave |∇F| ~ 1e4: the SPSA Hessian of noisy Monte-Carlo gradients is nearly singular)
    "hessian_regularization": 1.0,
    "inner_step_size": 0.05,
    "spsa_samples": 2,
    "perturbation_scale": 1.0,
    "perturbation_floor": 0.2,
    "outer_step_size": 0.01,  # 0: Theorem 2's 1 / (L_f √K) with L_f = 1
    "max_hypergradient_norm": None,  # clip ‖∇F‖ to this before the outer step; None: no clipping (HRI: 2)
    "greedy_evaluation": True,
    "expert_features": "all",  # expert reward model's features: "all" six or the "adversary"'s own two
    "cross_term": "data_dependent",  # Lemma 2's cross term: "data_dependent" (default) or "fixed_data" (paper, eq. 4)
    # restart a warm-started MADDPG team worse than random play on its own reward before a fine-tune
    # (pre-registered test on fresh seeds 20-29: no stuck in-run adversary; docs/mpe.md, session 14)
    "reset_worse_than_random": True,
    # MA-IRL's μ(π) in Lemmas 1/3: "joint" (the model pair; θl and θe then get the same gradient, the teams sharing
    # MPE's six features) or "best_response" (each team against the other's demonstrated policy; docs/mpe.md)
    "ma_irl_gradient": "joint",
    "seed_batch": 1,  # seeds vmapped together; 1 here: MADDPG on MPE is compute-bound (docs/results.md)
    "retrain_evaluation": True,  # also score a policy retrained from scratch on the final learned rewards (docs/mpe.md)
    # reward models over the features: None = linear (the paper's); k = a tanh MLP with k hidden units, scaled by
    # feature_scale (docs/simulators.md §1.1)
    **sample_units.REWARD_MODEL_OPTIONS,
}

METRICS = ("learner_return", "expert_return")


def _check_options(options: dict) -> None:
    for name in ("hidden", "num_envs", "updates_per_cycle", "minibatch_size", "cycles_per_train", "warmup_cycles",
                 "data_episodes", "evaluation_episodes", "spsa_samples"):
        if int(options[name]) < 1:
            raise ValueError(f"{name}: expected a positive integer, got {options[name]!r}")
    if int(options["warmup_cycles"]) % int(options["cycles_per_train"]):
        raise ValueError(f"warmup_cycles: expected a multiple of cycles_per_train, got {options['warmup_cycles']!r}")
    if float(options["outer_step_size"]) < 0:
        raise ValueError(f"outer_step_size: expected >= 0 (0 = Theorem 2's schedule), got {options['outer_step_size']!r}")
    clip = options["max_hypergradient_norm"]
    if clip is not None and not is_positive_number(clip):
        raise ValueError(f"max_hypergradient_norm: expected a positive number or null, got {clip!r}")
    if options["ma_irl_gradient"] not in MA_IRL_GRADIENTS:
        raise ValueError(f"ma_irl_gradient: expected one of {list(MA_IRL_GRADIENTS)}, got {options['ma_irl_gradient']!r}")
    if not 0.0 < float(options["discount"]) <= 1.0:
        raise ValueError(f"discount: expected 0 < γ <= 1, got {options['discount']!r}")
    for name in ("feature_scale", "learning_rate", "radius", "initial_radius", "regularization",
                 "hessian_regularization", "inner_step_size", "perturbation_scale"):
        if not float(options[name]) > 0:
            raise ValueError(f"{name}: expected a positive number, got {options[name]!r}")
    sample_units.check_reward_hidden(options)


check_options = _check_options  # the runner calls it before any unit runs, whatever the backend


def make_backend(options: dict):
    """The shared sample-based back-end (gsiirl.algorithms.sample_based) on simple_adversary."""
    from gsiirl.algorithms.sample_based import SampleBasedConfig, SampleBasedGSIIRL
    from gsiirl.games import mpe
    from gsiirl.solvers.maddpg import MADDPGConfig

    _check_options(options)
    game = mpe.make_game(feature_scale=float(options["feature_scale"]), discount=float(options["discount"]),
                         expert_features=str(options["expert_features"]))
    maddpg = MADDPGConfig(
        hidden=int(options["hidden"]),
        actor_learning_rate=float(options["learning_rate"]),
        critic_learning_rate=float(options["learning_rate"]),
        num_envs=int(options["num_envs"]),
        iterations=int(options["cycles_per_train"]),
        updates_per_iteration=int(options["updates_per_cycle"]),
        minibatch_size=int(options["minibatch_size"]),
        temperature=float(options["policy_temperature"]),
        actor_gradient=str(options["actor_gradient"]),
        exploration=float(options["exploration"]),
        critics=str(options["critics"]), critic_input=str(options["critic_input"]),
    )
    config = SampleBasedConfig(
        maddpg=maddpg,
        warmup_iterations=int(options["warmup_cycles"]),
        data_episodes=int(options["data_episodes"]),
        evaluation_episodes=int(options["evaluation_episodes"]),
        radius=float(options["radius"]),
        initial_radius=float(options["initial_radius"]),
        regularization=float(options["regularization"]),
        hessian_regularization=float(options["hessian_regularization"]),
        inner_step_size=float(options["inner_step_size"]),
        spsa_samples=int(options["spsa_samples"]),
        perturbation_scale=float(options["perturbation_scale"]),
        perturbation_floor=float(options["perturbation_floor"]),
        outer_step_size=float(options["outer_step_size"]) or None,
        max_hypergradient_norm=None if options["max_hypergradient_norm"] is None
        else float(options["max_hypergradient_norm"]),
        greedy_evaluation=bool(options["greedy_evaluation"]),
        cross_term=str(options["cross_term"]),
        reset_worse_than_random=bool(options["reset_worse_than_random"]),
        ma_irl_gradient=str(options["ma_irl_gradient"]),
    )
    return SampleBasedGSIIRL(sample_units.with_reward_models(game, options), config)


_UNIT_ONLY_OPTIONS = ("retrain_evaluation", "seed_batch")  # read by the unit runner, not by the compiled back-end


@lru_cache(maxsize=4)
def _cached_backend(frozen: tuple):
    """One back-end (and so one set of compiled functions) per option set and process: a worker that
    runs several units reuses the compilation (≈ 20–50 s per unit otherwise)."""
    return make_backend(dict(frozen))


def make_group_runner(options: dict | None = None) -> Callable[..., list[dict[str, list[float]]]]:
    """(method, seeds, iterations, progress) -> per-seed metric lists, the seeds run as one vmapped
    batch (runner contract for seed groups; :mod:`gsiirl.experiments.sample_units`).

    ``options`` override :data:`DEFAULT_OPTIONS` (unknown keys are rejected). One back-end (and so one
    set of compiled functions) serves every unit with these options in this process.
    """
    from gsiirl.experiments.runner import freeze_options, merge_options
    from gsiirl.experiments.sample_units import check_seed_batch

    options = merge_options(DEFAULT_OPTIONS, options)
    _check_options(options)
    check_seed_batch(options)
    backend = _cached_backend(freeze_options(options, exclude=_UNIT_ONLY_OPTIONS))

    def run(method: str, seeds: tuple[int, ...], iterations: int,
            progress: Callable[[int], None], checkpoint=None) -> list[dict[str, list[float]]]:
        from gsiirl.experiments.sample_units import run_seed_group

        if method not in ("gsiirl", "ma-irl", "marl"):
            raise ValueError(f"method: expected 'gsiirl', 'ma-irl' or 'marl', got {method!r}")
        return run_seed_group(backend, method, seeds, iterations, progress, options["retrain_evaluation"],
                              checkpoint)[0]

    return run


def make_unit_runner(options: dict | None = None) -> Callable[[str, int, int, Callable[[int], None]], dict[str, list[float]]]:
    """(method, seed, iterations, progress) -> per-iteration metric lists (runner contract); computes
    the seed's whole group (option ``seed_batch``, default 1) so its numbers are the runner's."""
    from gsiirl.experiments.sample_units import unit_runner_from_groups

    return unit_runner_from_groups(make_group_runner, DEFAULT_OPTIONS, options)


def summary(results: dict) -> str:
    """Final iteration per method: the good agents' (learner) and the adversary's (expert) returns, mean ±
    std over seeds, and the paired per-seed gaps to MARL."""
    from gsiirl.experiments.results_file import summary_text

    return summary_text(results, labels={"learner_return": "agents return", "expert_return": "adversary return"})


def make_figure(results: dict, out_dir: Path) -> list[Path]:
    """Figure 2: agents' (learner team) return and adversary's return vs outer iteration (mean ± std
    bands, thin per-seed lines, MARL as horizontal lines)."""
    import matplotlib.pyplot as plt

    from gsiirl.experiments.figures import add_statistics_note, plot_methods, save_figure

    # constrained layout: the right panel's y label keeps clear of the left panel
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    # Thin lines: every seed (a seed whose adversary stays far away shows as an outlier, not as noise).
    kinds = plot_methods(left, results, "learner_return", title="Agents' reward",
                         ylabel="cumulative true reward", show_seeds=True)
    kinds |= plot_methods(right, results, "expert_return", title="Adversary's reward",
                          ylabel="cumulative true reward", show_seeds=True)
    fig.suptitle("MPE physical deception (simple_adversary)")
    add_statistics_note(fig, kinds)
    return [save_figure(fig, Path(out_dir) / "figure2_mpe.png")]
