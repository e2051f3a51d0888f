"""The built-in demo: GSIIRL vs MA-IRL vs MARL on a small random general-sum game.

Writes ``OUT/demo.png`` (true returns and hypergradient norm per outer iteration, mean ± std over
seeds, MARL as a horizontal line), ``OUT/demo_table.md`` and returns the table as text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

DEMO_SETTINGS = dict(radius=3.0, num_trajectories=200, perturbation_scale=0.3, inner_step_size=0.5,
                     outer_step_size=0.5)


def run_demo(out_dir: Path, *, seeds: int = 3, iterations: int = 30, show_progress: bool = True) -> str:
    """Run the demo and write its figure and table; returns the Markdown table."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from tqdm import tqdm

    import gsiirl
    from gsiirl.experiments.figures import save_figure
    from gsiirl.experiments.history_plots import plot_history_panel
    from gsiirl.experiments.results_file import mean_std_text
    from gsiirl.io.atomic import atomic_write_bytes, check_output_directory
    from gsiirl.validation import check_count

    seeds, iterations = check_count("seeds", seeds, 1), check_count("iterations", iterations, 1)
    out_dir = check_output_directory(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    game = gsiirl.random_tabular_game(1, num_states=5, num_learner_actions=2, num_expert_actions=2, horizon=4)
    marl = gsiirl.marl(game)
    histories: dict[str, list[dict]] = {"gsiirl": [], "ma-irl": []}
    with tqdm(total=2 * seeds * iterations, desc="demo", disable=not show_progress) as bar:
        for method in histories:
            for seed in range(seeds):
                result = gsiirl.fit(game, method=method, outer_iters=iterations, seed=seed,
                                    progress=lambda _: bar.update(), **DEMO_SETTINGS)
                histories[method].append(result.history)

    figure, axes = plt.subplots(1, 4, figsize=(18, 4))
    panels = [("learner_return", "learner's true return"), ("expert_return", "expert's true return"),
              ("expert_policy_kl", "KL(true expert ‖ learned expert)"),
              ("hypergradient_norm", "GSIIRL hypergradient norm (SPSA)")]
    labelled = {method.upper(): runs for method, runs in histories.items()}
    for axis, (metric, title) in zip(axes, panels):
        shown = {"GSIIRL": labelled["GSIIRL"]} if metric == "hypergradient_norm" else labelled
        plot_history_panel(axis, shown, metric, reference=marl.get(metric) if metric.endswith("_return") else None)
        axis.set_title(title)
    axes[0].legend()
    figure.tight_layout()
    figure.text(0.5, 0.0, "line: mean over seeds; band: ± 1 std (ddof 0); n: seeds; dashed: MARL with the true "
                "rewards (exact, one value)", ha="center", va="top", fontsize=8, color="dimgray")
    save_figure(figure, out_dir / "demo.png")

    lines = ["| method | learner return | expert return | expert-policy KL |", "|---|---|---|---|",
             f"| MARL (true rewards) | {marl['learner_return']:.3f} | {marl['expert_return']:.3f} | 0 |"]
    for method, runs in histories.items():
        cells = []
        for metric in ("learner_return", "expert_return", "expert_policy_kl"):
            finals = np.array([h[metric][-1] for h in runs])
            cells.append(mean_std_text(float(finals.mean()), float(finals.std()), finals.size))
        lines.append(f"| {method.upper()} | " + " | ".join(cells) + " |")
    table = "\n".join(lines) + f"\n\n(final iteration, mean ± std over {seeds} seed{'s' if seeds != 1 else ''}; {game!r})\n"
    atomic_write_bytes(out_dir / "demo_table.md", table.encode())
    return table
