"""Human–robot interaction experiment (paper §8.2, Figure 3, Table 1 column "HRI"; DESIGN §6).

Game: :func:`gsiirl.games.hri.make_hri_game` (rewards, safe distance, features: see docs/hri.md).
Policies: MADDPG (:mod:`gsiirl.solvers.maddpg`), warm-started across outer iterations.
Methods (:class:`gsiirl.algorithms.sample_based.SampleBasedGSIIRL`):

* ``marl`` — MADDPG on both TRUE rewards (warm-up + K fine-tunes); one value per seed.
* ``gsiirl`` — Algorithm 1 with SPSA (the only hypergradient available for simulators).
* ``ma-irl`` — passive maximum-likelihood MA-IRL of both θ's from demonstrations of the MARL policy; since
  0.5.0 each θ's gradient takes μ from its team's best response to the other's demonstrated policy (option
  ``ma_irl_gradient``).

Reported per iteration (greedy policies of the learned rewards, scored with the TRUE rewards):
``learner_return`` / ``expert_return`` (undiscounted episode sums), ``collision_rate`` (share of
episodes with a step closer than ``safe_distance``), ``goal_rate`` (share of episodes in which both
reached their goal discs), ``episode_length``, ``wall_time``; GSIIRL also ``hypergradient_norm``,
``upper_objective`` (f, discounted, stochastic policy), ``expert_loss`` (L's data term) and θ's.
GSIIRL and MA-IRL units also store ``retrained_*`` versions of the final metrics (option
``retrain_evaluation``): a policy retrained from scratch on the final learned rewards with the MARL
unit's budget and random numbers (:meth:`SampleBasedGSIIRL.retrained_evaluation`).
Every unit also stores one greedy sample trajectory of its final policy from the crossing start
``sample_robot_start`` / ``sample_human_start`` (``trajectory_*`` lists, up to T+1 points) for
Figure 3 (e)/(f).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from gsiirl.experiments import sample_units
from gsiirl.games.hri import HRI_DEFAULTS

ALGORITHM_OPTIONS = {
    "hypergradient": "spsa",
    "hidden": 32,
    "finetune_cycles": 2,
    "updates_per_cycle": 16,
    "num_envs": 32,
    "minibatch_size": 128,
    "buffer_cycles": 4,
    "learning_rate": 3e-3,
    "policy_temperature": 0.02,
    "exploration": 0.1,
    "actor_gradient": "boltzmann",
    "critic_input": "joint",  # MADDPG critic: "joint" Q_i(s, a) or "others" Q_i(s, a_-i) -> own-action values
    "warmup_cycles": 60,
    "data_episodes": 256,
    "evaluation_episodes": 256,
    "likelihood_temperature": 1.0,
    # λ of the inner loop (Lemma 1) and the ridge of the implicit term's SPSA Hessian; until 0.3.0 λ = 0.5 and
    # the ridge = λ (docs/hri.md, "Session 36")
    "regularization": 0.1,
    "hessian_regularization": 0.5,
    "radius": 1.5,
    # random initial θ's have norms in [0.5, 1]·this (before 0.3.0: the radius, 1.5; docs/hri.md, "Session 35")
    "initial_radius": 0.25,
    "inner_step_size": 0.05,
    "outer_step_size": None,
    "lipschitz": 1.5,  # α = 1/(L_f √K) = 0.067 for K = 100 (3.0: seeds that start rewarding collisions took ≈ 80 iterations)
    "spsa_samples": 2,
    "perturbation_scale": 1.0,
    "perturbation_floor": 0.2,
    "max_hypergradient_norm": 2.0,
    "hypergradient_terms": "lemma2",  # the paper's Lemma 2; "direct" (∇θl f only) is the ablation of docs/hri.md
    "cross_term": "data_dependent",  # Lemma 2's cross term: "data_dependent" (default) or "fixed_data" (paper, eq. 4)
    # restart a warm-started MADDPG team worse than random play on its own reward (docs/design_decisions.md)
    "reset_worse_than_random": False,
    # MA-IRL's μ(π): "best_response" (each team against the other's demonstrated policy; adopted by a pre-registered
    # test on seeds 120-149, docs/hri.md "Session 38") or "joint" (the model pair; the default until 0.5.0)
    "ma_irl_gradient": "best_response",
    "seed_batch": 5,  # seeds vmapped together as one batch (groups [g·B, (g+1)·B); docs/hri.md)
    "retrain_evaluation": True,  # also score a policy retrained from scratch on the final learned rewards (docs/hri.md)
    # reward models over the game's 3 features: None = linear; k = a tanh MLP with k hidden units (docs/hri.md,
    # "Session 34")
    **sample_units.REWARD_MODEL_OPTIONS,
    "sample_robot_start": [0.0, -0.4],  # Figure 3 (e): a start where the two paths cross
    "sample_human_start": [0.45, 0.0],
}
# resuming results files older than an option: the value they were made with
OPTION_VALUES_BEFORE_ADDED = {**sample_units.OPTION_VALUES_BEFORE_ADDED, "critic_input": "joint",
                              # before the option the Hessian's ridge was λ
                              "hessian_regularization": lambda stored: stored.get("regularization", 0.5),
                              # before 0.3.0 the initial draws used the ball's radius
                              "initial_radius": lambda stored: stored.get("radius", 1.5)}
DEFAULT_OPTIONS = {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in HRI_DEFAULTS.items()},
                   **ALGORITHM_OPTIONS}


_UNIT_ONLY_OPTIONS = ("retrain_evaluation", "seed_batch")  # read by the unit runner, not by the compiled back-end


def _freeze(options: dict) -> tuple:
    from gsiirl.experiments.runner import freeze_options

    return freeze_options(options, exclude=_UNIT_ONLY_OPTIONS)


@lru_cache(maxsize=4)
def _build(frozen: tuple):
    from gsiirl.algorithms.sample_based import SampleBasedGSIIRL
    from gsiirl.games.hri import make_hri_game

    o = dict(frozen)
    config = _sample_based_config(o)
    game = make_game(o)
    sample_game = make_hri_game({**{k: o[k] for k in HRI_DEFAULTS},
                                 "robot_start_low": o["sample_robot_start"], "robot_start_high": o["sample_robot_start"],
                                 "human_start_low": o["sample_human_start"], "human_start_high": o["sample_human_start"]})
    return sample_game, SampleBasedGSIIRL(game, config, metrics_fn=make_metrics_fn(o["safe_distance"]))


def make_game(options: dict):
    """The HRI game of a full option dict (:data:`DEFAULT_OPTIONS` merged with a run's), with its reward models."""
    from gsiirl.games.hri import make_hri_game

    return sample_units.with_reward_models(make_hri_game({k: options[k] for k in HRI_DEFAULTS}), options)


def _sample_based_config(o: dict):
    """The SampleBasedConfig (with its MADDPGConfig) of an option dict; ValueError names a bad option."""
    from gsiirl.algorithms.sample_based import SampleBasedConfig
    from gsiirl.solvers.maddpg import MADDPGConfig

    if o["hypergradient"] != "spsa":
        raise ValueError(f"option hypergradient: the HRI (simulator) back-end supports only 'spsa', "
                         f"got {o['hypergradient']!r}")
    maddpg = MADDPGConfig(
        hidden=o["hidden"], actor_learning_rate=o["learning_rate"], critic_learning_rate=o["learning_rate"],
        num_envs=o["num_envs"], iterations=o["finetune_cycles"], updates_per_iteration=o["updates_per_cycle"],
        buffer_iterations=o["buffer_cycles"], minibatch_size=o["minibatch_size"],
        temperature=o["policy_temperature"], exploration=o["exploration"], actor_gradient=o["actor_gradient"],
        critic_input=str(o["critic_input"]))
    config = SampleBasedConfig(
        maddpg=maddpg, warmup_iterations=o["warmup_cycles"], data_episodes=o["data_episodes"],
        evaluation_episodes=o["evaluation_episodes"], temperature=o["likelihood_temperature"],
        regularization=o["regularization"], hessian_regularization=o["hessian_regularization"], radius=o["radius"],
        initial_radius=o["initial_radius"],
        inner_step_size=o["inner_step_size"], outer_step_size=o["outer_step_size"], lipschitz=o["lipschitz"],
        spsa_samples=o["spsa_samples"],
        perturbation_scale=o["perturbation_scale"], perturbation_floor=o["perturbation_floor"],
        max_hypergradient_norm=o["max_hypergradient_norm"], hypergradient_terms=o["hypergradient_terms"],
        cross_term=o["cross_term"], reset_worse_than_random=bool(o["reset_worse_than_random"]),
        ma_irl_gradient=str(o["ma_irl_gradient"]))
    return config


def check_options(options: dict) -> None:
    """The runner calls it before any unit runs, whatever the backend: the algorithm's configuration is
    built (and validated) without building the game or compiling anything."""
    sample_units.check_reward_hidden(options)
    try:
        _sample_based_config(options)
    except ValueError as error:  # name the option the user typed, not the config field it feeds
        field, _, reason = str(error).partition(": ")
        if field in _CONFIG_FIELD_OPTIONS:
            raise ValueError(f"option {_CONFIG_FIELD_OPTIONS[field]}: {reason}") from None
        raise
    sample_units.check_seed_batch(options)


# SampleBasedConfig / MADDPGConfig fields whose HRI option has another name
_CONFIG_FIELD_OPTIONS = {
    "actor_learning_rate": "learning_rate", "critic_learning_rate": "learning_rate", "iterations": "finetune_cycles",
    "updates_per_iteration": "updates_per_cycle", "buffer_iterations": "buffer_cycles",
    "warmup_iterations": "warmup_cycles",
}


def make_metrics_fn(safe_distance: float):
    """Per-episode HRI indicators from a rollout: collision (any step closer than safe) and goal."""
    import jax
    import jax.numpy as jnp

    from gsiirl.games.hri import segment_min_distance

    def metrics(data):
        traj = data.global_trajectory  # [N, T+1, 6]
        d = jax.vmap(jax.vmap(segment_min_distance))(traj[:, :-1, 0:2], traj[:, :-1, 2:4],
                                                     traj[:, 1:, 0:2], traj[:, 1:, 2:4])  # [N, T]
        collided = jnp.max((d < safe_distance) * data.alive, axis=1)
        goal = traj[:, -1, 4] * traj[:, -1, 5]
        return {"collision_rate": collided, "goal_rate": goal}

    return metrics


def make_group_runner(options: dict | None = None):
    """Runner contract for seed groups: ``run(method, seeds, iterations, progress) -> [metrics per seed]``;
    the seeds run as one vmapped batch (:mod:`gsiirl.experiments.sample_units`).

    ``options`` override :data:`DEFAULT_OPTIONS` (unknown keys are rejected)."""
    from gsiirl.experiments.runner import merge_options
    from gsiirl.experiments.sample_units import check_seed_batch

    merged = merge_options(DEFAULT_OPTIONS, options)
    check_seed_batch(merged)
    sample_game, algorithm = _build(_freeze(merged))

    def run(method: str, seeds: tuple[int, ...], iterations: int, progress,
            checkpoint=None) -> list[dict[str, list[float]]]:
        import jax

        from gsiirl.algorithms.seed_batch import tree_index
        from gsiirl.experiments.sample_units import run_seed_group
        from gsiirl.games.continuous import rollout
        from gsiirl.solvers.maddpg import make_policy

        results, states, keys = run_seed_group(algorithm, method, seeds, iterations, progress,
                                               merged["retrain_evaluation"], checkpoint)
        for index, metrics in enumerate(results):
            actor = tree_index(states, index).actor
            sample = rollout(jax.random.fold_in(keys[index], 7919), sample_game,
                             make_policy(sample_game, actor, greedy=True), 1)
            traj = np.asarray(sample.global_trajectory[0])
            traj = traj[: int(np.asarray(sample.alive[0]).sum()) + 1]
            for name, column in (("robot_x", 0), ("robot_y", 1), ("human_x", 2), ("human_y", 3)):
                metrics[f"trajectory_{name}"] = [float(v) for v in traj[:, column]]
        return results

    return run


def make_unit_runner(options: dict | None = None):
    """Runner contract: ``run(method, seed, iterations, progress) -> {metric: [per-iteration values]}``.

    Computes the seed's whole group (option ``seed_batch``) so its numbers are the runner's."""
    from gsiirl.experiments.sample_units import unit_runner_from_groups

    return unit_runner_from_groups(make_group_runner, DEFAULT_OPTIONS, options)


def summary(results: dict) -> str:
    """Final iteration per method: robot / human returns, collision and goal rates (mean ± std over seeds),
    and the paired per-seed gaps to MARL on the two returns."""
    from gsiirl.experiments.results_file import summary_text

    return summary_text(results, labels={"learner_return": "robot return", "expert_return": "human return"},
                        extra_metrics=("collision_rate", "goal_rate"))


def make_figure(results: dict, out_dir: Path) -> list[Path]:
    """Figure 3: (a) robot return, (b) human return, (c) collision rate, (d) goal rate, (e) every seed's
    greedy GSIIRL trajectory from the crossing start with goal discs and the count that reach both goals
    without collision, (f) robot–human distance over them with the safe distance."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    from gsiirl.experiments.figures import add_statistics_note, plot_methods, save_figure

    options = {**DEFAULT_OPTIONS, **results.get("config", {}).get("options", {})}
    fig, axes = plt.subplots(2, 3, figsize=(15, 9), layout="constrained")
    panels = [("learner_return", "(a) robot (learner) return", "cumulative true reward", None),
              ("expert_return", "(b) human (expert) return", "cumulative true reward", None),
              ("collision_rate", "(c) collision rate", "rate", (0.0, 1.0)),  # bands clipped to a rate's range
              ("goal_rate", "(d) goal-reaching rate", "rate", (0.0, 1.0))]
    kinds = set()
    for ax, (metric, title, ylabel, limits) in zip(axes.ravel()[:4], panels):
        kinds |= plot_methods(ax, results, metric, title=title, ylabel=ylabel, limits=limits)
    add_statistics_note(fig, kinds)
    traj_ax, dist_ax = axes.ravel()[4], axes.ravel()[5]
    method, seeds = _sample_source(results)
    for center, color, label in ((options["robot_goal"], "tab:blue", "robot goal"),
                                 (options["human_goal"], "tab:red", "human goal")):
        traj_ax.add_patch(plt.Circle(tuple(center), options["goal_radius"], color=color, alpha=0.3, label=label))
    # Every seed's greedy trajectory from the same crossing start: no seed is singled out.
    outcomes = sample_outcomes(seeds, options)
    for index, outcome in enumerate(outcomes.values()):
        robot, human = outcome["robot"], outcome["human"]
        traj_ax.plot(robot[:, 0], robot[:, 1], "o-", color="tab:blue", ms=2, lw=1, alpha=0.6,
                     label="robot (each seed)" if index == 0 else None)
        traj_ax.plot(human[:, 0], human[:, 1], "s-", color="tab:red", ms=2, lw=1, alpha=0.6,
                     label="human (each seed)" if index == 0 else None)
        # The collision rule is segment-wise (closest approach while both move straight within a step), so
        # the line follows that motion, not only the step ends: a collision is visible as a dip below the line.
        times, distances = within_step_distances(robot, human)
        color = "k" if outcome["safe"] else "tab:orange"
        dist_ax.plot(times, distances, "-", color=color, alpha=0.6, lw=1)
        dist_ax.plot(np.arange(len(robot)), np.linalg.norm(robot - human, axis=1), ".", color=color, alpha=0.6,
                     label="at the step ends" if index == 0 else None)
    dist_ax.axhline(options["safe_distance"], color="tab:red", linestyle="--", label="safe distance")
    safe = sum(o["safe"] and o["both_goals"] for o in outcomes.values())
    traj_ax.set_title(f"(e) greedy trajectories, {method}: {safe}/{len(outcomes)} seeds reach\n"
                      "both goals without collision", fontsize=10)
    traj_ax.set_aspect("equal")
    traj_ax.set_xlabel("x")
    traj_ax.set_ylabel("y")
    traj_ax.legend(fontsize=8)
    dist_ax.set_title("(f) robot–human distance, straight motion within each step\n(orange: a collision)",
                      fontsize=10)
    dist_ax.set_xlabel("time step")
    dist_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    dist_ax.set_ylabel("distance")
    dist_ax.legend(fontsize=8)
    for ax in (traj_ax, dist_ax):
        ax.grid(alpha=0.3)
    return [save_figure(fig, Path(out_dir) / "figure3_hri.png")]


def within_step_distances(robot: np.ndarray, human: np.ndarray, samples: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Robot–human distance while both move in a straight line within each step, as the collision rule
    (:func:`gsiirl.games.hri.segment_min_distance`) assumes: ``samples`` + 1 evenly spaced times per step
    plus the step's closest approach, so the curve's minimum is the segment-wise minimum.

    Args: robot, human: ``[T+1, 2]`` positions at the step ends.
    Returns: (times ``[N]`` in steps, increasing; distances ``[N]``)."""
    import jax

    from gsiirl.games.hri import closest_approach

    robot, human = np.asarray(robot, float), np.asarray(human, float)
    if len(robot) < 2:
        return np.zeros(1), np.linalg.norm(robot - human, axis=1)
    offsets, velocities, closest = map(np.asarray, jax.vmap(closest_approach)(robot[:-1], human[:-1], robot[1:],
                                                                               human[1:]))  # [T, 2], [T, 2], [T]
    times, distances = [], []
    for step, (offset, relative_velocity) in enumerate(zip(offsets, velocities)):
        fractions = np.union1d(np.linspace(0.0, 1.0, samples + 1), [float(closest[step])])
        if step < len(robot) - 2:
            fractions = fractions[fractions < 1.0]  # the next step starts there
        times.append(step + fractions)
        distances.append(np.linalg.norm(offset + fractions[:, None] * relative_velocity, axis=1))
    return np.concatenate(times), np.concatenate(distances)


def sample_outcomes(seeds: dict, options: dict) -> dict[str, dict]:
    """Per seed: the stored sample trajectory ([T+1, 2] robot and human points), whether it stays
    at least ``safe_distance`` apart on every step (segment-wise, as the collision metric) and
    whether both agents reach their goal discs."""
    import jax
    import jax.numpy as jnp

    from gsiirl.games.hri import segment_min_distance

    def reached(path, goal) -> bool:  # arrival exactly as the game decides it (float32, at a step's end)
        distances = jnp.linalg.norm(jnp.asarray(path, jnp.float32) - jnp.asarray(goal, jnp.float32), axis=1)
        return bool(jnp.any(distances <= options["goal_radius"]))

    outcomes = {}
    for seed in sorted(seeds, key=int):
        m = seeds[seed]
        robot = np.stack([m["trajectory_robot_x"], m["trajectory_robot_y"]], axis=1)
        human = np.stack([m["trajectory_human_x"], m["trajectory_human_y"]], axis=1)
        closest = float(np.min(jax.vmap(segment_min_distance)(robot[:-1], human[:-1], robot[1:], human[1:]))) \
            if len(robot) > 1 else float(np.linalg.norm(robot[0] - human[0]))
        outcomes[seed] = dict(robot=robot, human=human, min_distance=closest,
                              safe=closest >= options["safe_distance"],
                              both_goals=reached(robot, options["robot_goal"]) and reached(human, options["human_goal"]))
    return outcomes


def _sample_source(results: dict):
    """The sample trajectory comes from GSIIRL if present, else from another method."""
    methods = results.get("methods", {})
    for method in ("gsiirl", "ma-irl", "marl"):
        seeds = {s: m for s, m in methods.get(method, {}).get("seeds", {}).items() if m.get("trajectory_robot_x")}
        if seeds:
            return method, seeds
    return "none", {}


__all__ = ["DEFAULT_OPTIONS", "OPTION_VALUES_BEFORE_ADDED", "make_game", "make_group_runner", "make_unit_runner", "make_figure", "make_metrics_fn", "summary", "sample_outcomes"]
