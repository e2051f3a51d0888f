"""Cyber-security experiment (paper §8.3, Figure 4, Table 1 column "CS"; DESIGN §6).

Per seed: an attack graph is generated from the seed (option ``graph_seed`` fixes one graph for all
seeds instead), so the spread over seeds is over random graphs, reward initialisations, interaction
data and SPSA draws. Methods:

* ``marl`` — both policies from the TRUE rewards: the library's soft-Nash solver (default) or the
  paper's tabular Q-learning with A.10.3's exploration rule (``marl_solver=qlearning``). One value.
* ``gsiirl`` — :func:`gsiirl.fit` with ``method="gsiirl"`` (interaction + queried r_ld).
* ``ma-irl`` — passive: ``ma_irl_variant=likelihood`` (default, used for the table) runs
  :func:`gsiirl.fit` with ``method="ma-irl"`` (maximum-likelihood MA-IRL of both rewards from
  demonstrations made with both TRUE rewards); ``ma_irl_variant=adversarial`` runs the convex
  adversarial-equilibrium programme (:mod:`gsiirl.algorithms.ma_irl_adversarial`) on the same number
  of demonstrations (one value, no iterations).

Reward models: :class:`gsiirl.games.security.SecurityReward` for both players (features: one per node
"newly compromised", one per edge "attacked"/"blocked"; scale so that the true weights have norm
``representation_norm`` = 0.9 inside the unit ball at temperature α = ``temperature``).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from gsiirl.algorithms.config import FitConfig
from gsiirl.games.security import AttackGraph, SecurityReward, generate_attack_graph, security_game
from gsiirl.validation import is_integer

_FIT_DEFAULTS = FitConfig().to_dict()
EXPERIMENT_OPTIONS = {
    "nodes": 8,
    "edges": None,  # None: nodes + 2 (10 edges for 8 nodes, as in the paper)
    "graph_seed": None,  # None: each seed draws its own graph
    "horizon": 10,
    "discount": 0.95,
    "representation_norm": 0.9,
    "hypergradient": "spsa",
    "marl_solver": "equilibrium",
    "qlearning_episodes": 32_768,
    "ma_irl_variant": "likelihood",
}
# Inner (lower-level) step size: the expert NLL's largest Hessian eigenvalue at this feature scale was
# measured at 29-46 (graphs of seeds 0-2, at θ = 0 and at the true θ), so the library default β = 0.5
# makes projected gradient descent oscillate between ball boundary points; β = 0.02 ≈ 1/L_max.
# Stage solver: 10 extragradient iterations before the 3 safeguarded Newton steps reach the same
# equilibria as 200 (max |Δπ| ≤ 1.2e-6, residual ≤ 1.3e-6, float32) on graphs 0-2 with the true and with
# random learned rewards, at about half the time of the library's 60 (docs/security.md).
SECURITY_FIT_OVERRIDES = {"inner_step_size": 0.02, "iterations": 10}
DEFAULT_OPTIONS = {**EXPERIMENT_OPTIONS, **_FIT_DEFAULTS, **SECURITY_FIT_OVERRIDES}
MARL_SOLVERS = ("equilibrium", "qlearning")
MA_IRL_VARIANTS = ("likelihood", "adversarial")


def _graph_seed(options: dict, seed: int) -> int:
    return int(seed if options["graph_seed"] is None else options["graph_seed"])


@lru_cache(maxsize=32)
def _instance(graph_seed: int, nodes: int, edges, horizon: int, discount: float, representation_norm: float):
    graph = generate_attack_graph(graph_seed, nodes, edges)
    game = security_game(graph, horizon=horizon, discount=discount)
    return graph, game, SecurityReward(graph, representation_norm=representation_norm)


def build_instance(options: dict, seed: int):
    """(AttackGraph, TabularGame, SecurityReward) of ``seed`` under ``options``."""
    return _instance(_graph_seed(options, seed), int(options["nodes"]), options["edges"], int(options["horizon"]),
                     float(options["discount"]), float(options["representation_norm"]))


def _check(options: dict) -> None:
    if options["marl_solver"] not in MARL_SOLVERS:
        raise ValueError(f"option marl_solver: expected one of {list(MARL_SOLVERS)}, got {options['marl_solver']!r}")
    if options["ma_irl_variant"] not in MA_IRL_VARIANTS:
        raise ValueError(f"option ma_irl_variant: expected one of {list(MA_IRL_VARIANTS)}, "
                         f"got {options['ma_irl_variant']!r}")
    if options["hypergradient"] not in ("spsa", "exact", "finite_difference"):
        raise ValueError(f"option hypergradient: expected spsa, exact or finite_difference, "
                         f"got {options['hypergradient']!r}")
    FitConfig.from_options(**{key: options[key] for key in _FIT_DEFAULTS})  # validates the fit options
    generate_attack_graph(0, int(options["nodes"]), options["edges"])  # validates nodes / edges
    if not is_integer(options["qlearning_episodes"]) or options["qlearning_episodes"] < 1:
        raise ValueError(f"option qlearning_episodes: expected a positive integer, got {options['qlearning_episodes']!r}")
    graph_seed = options["graph_seed"]
    if graph_seed is not None and (not is_integer(graph_seed) or graph_seed < 0):
        raise ValueError(f"option graph_seed: expected a non-negative integer or null, got {graph_seed!r}")


check_options = _check  # the runner calls it before any unit runs, whatever the backend


def _marl_unit(options: dict, seed: int) -> dict[str, list[float]]:
    import jax

    from gsiirl.algorithms.gsiirl import marl
    from gsiirl.solvers.occupancy import expected_return
    from gsiirl.solvers.qlearning import q_learning

    _, game, _ = build_instance(options, seed)
    if options["marl_solver"] == "qlearning":
        result = q_learning(jax.random.PRNGKey(seed), game, game.learner_true_reward, game.expert_reward,
                            num_episodes=int(options["qlearning_episodes"]))
        return {"learner_return": [float(expected_return(game, result.policy, game.learner_true_reward))],
                "expert_return": [float(expected_return(game, result.policy, game.expert_reward))]}
    baseline = marl(game, equilibrium=options["equilibrium"], temperature=float(options["temperature"]),
                    iterations=int(options["iterations"]))
    return {"learner_return": [baseline["learner_return"]], "expert_return": [baseline["expert_return"]],
            "equilibrium_residual": [baseline["residual"]]}


def _adversarial_unit(options: dict, seed: int, fit_options: dict) -> dict[str, list[float]]:
    import jax

    from gsiirl.algorithms.interaction import SimulatedExpert
    from gsiirl.algorithms.lower_level import LowerLevelProblem
    from gsiirl.algorithms.ma_irl_adversarial import ma_irl_adversarial
    from gsiirl.algorithms.tabular_metrics import iteration_metrics
    from gsiirl.solvers.sampling import empirical_occupancy

    _, game, model = build_instance(options, seed)
    config = FitConfig.from_options(**fit_options)
    expert = SimulatedExpert(game, equilibrium=config.equilibrium, temperature=config.temperature,
                             iterations=config.iterations)
    demonstrations = expert.interact(jax.random.PRNGKey(seed), game.learner_true_reward, None,
                                     config.num_trajectories)
    result = ma_irl_adversarial(game, model, demonstrations, temperature=config.temperature, radius=config.radius)
    problem = LowerLevelProblem(game, model, model, equilibrium=config.equilibrium, temperature=config.temperature,
                                regularization=config.regularization, iterations=config.iterations)
    data = empirical_occupancy(demonstrations, game.joint_shape, game.horizon)
    record = iteration_metrics(problem, game, expert, jax.numpy.asarray(result.theta_learner, jax.numpy.float32),
                               jax.numpy.asarray(result.theta_expert, jax.numpy.float32), data,
                               demonstrations)
    record["equilibrium_condition_residual"] = result.residual
    return {key: [float(value)] for key, value in record.items()}


def make_unit_runner(options: dict | None = None):
    """``run(method, seed, iterations, progress) -> {metric: [value per iteration]}`` for this experiment.

    ``options`` override :data:`DEFAULT_OPTIONS` (unknown keys are rejected)."""
    from gsiirl.experiments.runner import merge_options

    options = merge_options(DEFAULT_OPTIONS, options)
    _check(options)
    fit_options = {key: options[key] for key in _FIT_DEFAULTS}

    def run(method: str, seed: int, iterations: int, progress, checkpoint=None) -> dict[str, list[float]]:
        """One seed's unit; ``checkpoint`` (a path or RunState) makes GSIIRL and MA-IRL (``fit``) resumable
        after every outer iteration (MARL is one exact solve; the adversarial MA-IRL variant restarts)."""
        if method == "marl":
            return _marl_unit(options, seed)
        if method == "ma-irl" and options["ma_irl_variant"] == "adversarial":
            return _adversarial_unit(options, seed, fit_options)
        from gsiirl.algorithms.gsiirl import fit

        _, game, model = build_instance(options, seed)
        result = fit(game, method=method, hypergradient=options["hypergradient"], outer_iters=iterations,
                     seed=seed, learner_model=model, expert_model=model, progress=progress,
                     checkpoint=checkpoint, **fit_options)
        return result.history

    return run


def draw_attack_graph(ax, graph: AttackGraph) -> None:
    """Attack graph with nodes layered by BFS depth from the entry; labels: node value, edge P(success)."""
    from gsiirl.experiments.figures import edge_label_points

    depth = {graph.entry: 0}
    frontier = [graph.entry]
    while frontier:
        following = []
        for node in frontier:
            for source, target in zip(graph.sources, graph.targets):
                if source == node and int(target) not in depth:
                    depth[int(target)] = depth[node] + 1
                    following.append(int(target))
        frontier = following
    layers: dict[int, list[int]] = {}
    for node, level in sorted(depth.items()):
        layers.setdefault(level, []).append(node)
    position = {}
    for level, nodes in layers.items():
        for rank, node in enumerate(nodes):
            position[node] = (rank - (len(nodes) - 1) / 2.0, -float(level))
    starts = [position[int(source)] for source in graph.sources]
    ends = [position[int(target)] for target in graph.targets]
    # labels on their (curved) edge, moved along it where they would cover another label or a node
    labels = edge_label_points(starts, ends, rad=0.15, avoid=list(position.values()))
    for edge, ((x0, y0), (x1, y1)) in enumerate(zip(starts, ends)):
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                    arrowprops=dict(arrowstyle="-|>", color="gray", shrinkA=13, shrinkB=13,
                                    connectionstyle="arc3,rad=0.15"))
        ax.text(*labels[edge], f"{graph.success_probs[edge]:.2f}", fontsize=6, color="dimgray", ha="center",
                va="center", bbox=dict(boxstyle="round,pad=0.1", facecolor="white", edgecolor="none", alpha=0.8))
    for node, (x, y) in position.items():
        color = "tab:red" if node == graph.entry else "lightsteelblue"
        ax.scatter([x], [y], s=520, color=color, edgecolor="black", zorder=3)
        ax.text(x, y, f"{node}\n{graph.node_values[node]:.1f}", ha="center", va="center", fontsize=7, zorder=4)
    ax.set_title(f"Attack graph ({graph.num_nodes} nodes, {graph.num_edges} edges)")
    ax.set_axis_off()
    ax.set_aspect("equal")  # the label positions follow the arcs' geometry in data units
    ax.margins(0.15)


def make_figure(results: dict, out_dir: Path) -> list[Path]:
    """Figure 4: the attack graph, defender's and attacker's ground-truth return vs iteration (PNG)."""
    import matplotlib.pyplot as plt

    from gsiirl.experiments.figures import add_statistics_note, plot_methods, save_figure

    options = {**DEFAULT_OPTIONS, **results.get("config", {}).get("options", {})}
    graph, _, _ = build_instance(options, 0)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), layout="constrained")
    draw_attack_graph(axes[0], graph)
    kinds = plot_methods(axes[1], results, "learner_return", title="Defender (learner)",
                         ylabel="cumulative true reward")
    kinds |= plot_methods(axes[2], results, "expert_return", title="Attacker (expert)",
                          ylabel="cumulative true reward")
    add_statistics_note(fig, kinds)
    if options["graph_seed"] is None:
        axes[0].set_title(axes[0].get_title() + " — seed 0's graph")
    return [save_figure(fig, Path(out_dir) / "figure4_security.png")]


def summary(results: dict) -> str:
    """Table 1 style text: final mean ± std per method, and the per-seed gap to MARL (paired)."""
    from gsiirl.experiments.results_file import summary_text

    return summary_text(results)


__all__ = ["DEFAULT_OPTIONS", "make_unit_runner", "make_figure", "summary", "build_instance", "draw_attack_graph"]
