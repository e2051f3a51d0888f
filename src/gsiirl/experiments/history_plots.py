"""Plots of your own runs: per-iteration metrics of ``fit`` results, mean ± std over seeds.

``gsiirl.fit`` draws nothing; its ``FitResult.history`` is {metric: [K] values}. :func:`plot_histories`
turns several seeds of several methods into the figure the experiments draw: one panel per metric, a
line for the mean over seeds and a band of ± one population standard deviation (ddof 0), reference
values (e.g. MARL with the true rewards) as dashed horizontal lines. ``gsiirl demo`` uses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from gsiirl.experiments.figures import NOTE_PARTS, plot_band, plot_single_iteration, save_figure

COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")
NOTE = NOTE_PARTS["band"] + "; n: seeds; dashed: reference value"


def history_curves(runs: Sequence, metric: str, label: str = "runs") -> np.ndarray:
    """[seeds, K] float array of ``metric`` from a sequence of FitResults or history dicts (one per seed).

    Raises ValueError naming the label and the metric when a run lacks it or the runs' lengths differ.
    """
    if hasattr(runs, "history") or isinstance(runs, Mapping):  # one run given without a list
        runs = [runs]
    histories = [getattr(run, "history", run) for run in runs]
    if not histories:
        raise ValueError(f"histories[{label!r}]: expected at least one run (a FitResult or its history)")
    for index, history in enumerate(histories):
        if not isinstance(history, Mapping):
            raise TypeError(f"histories[{label!r}][{index}]: expected a FitResult or a history dict, "
                            f"got {type(history).__name__}")
        if metric not in history:
            raise ValueError(f"histories[{label!r}][{index}]: no metric {metric!r} (it has {sorted(history)})")
    lengths = sorted({len(history[metric]) for history in histories})
    if len(lengths) != 1:
        raise ValueError(f"histories[{label!r}]: {metric!r} has different lengths across seeds ({lengths}); "
                         "plot runs of the same number of outer iterations")
    return np.array([[np.nan if v is None else float(v) for v in history[metric]] for history in histories])


def plot_history_panel(ax, histories: Mapping[str, Sequence], metric: str, *,
                       reference: float | None = None, reference_label: str = "MARL (true rewards)") -> bool:
    """One panel: each label's seeds as a mean ± std band over outer iterations 1..K (legend: label and
    number of seeds), runs of one value each (``fit(method="marl")``, ``outer_iters=1``) as a marker ± std
    at iteration 1, ``reference`` as a dashed horizontal line. Returns whether a marker was drawn."""
    from matplotlib.ticker import MaxNLocator

    markers = bands = False
    for index, (label, runs) in enumerate(histories.items()):
        curves = history_curves(runs, metric, label)
        style = dict(label=f"{label} (n={curves.shape[0]})", color=COLORS[index % len(COLORS)])
        if curves.shape[1] == 1:  # a one-point line draws nothing: the legend would list an invisible run
            plot_single_iteration(ax, curves[:, 0], **style)
            markers = True
        else:
            plot_band(ax, curves, **style)
            bands = True
    if reference is not None:
        ax.axhline(float(reference), color="black", linestyle="--", label=reference_label)
    ax.set_xlabel("outer iteration")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    if markers and not bands:  # nothing spans iterations: centre iteration 1
        ax.set_xlim(0.5, 1.5)
    return markers


def plot_histories(histories: Mapping[str, Sequence], metrics: Sequence[str], *,
                   references: Mapping[str, float] | None = None, titles: Mapping[str, str] | None = None,
                   path: str | Path | None = None):
    """One panel per metric of several methods' runs; returns the matplotlib Figure.

    Args:
        histories: {label: runs}, runs a sequence (one per seed) of FitResults or their ``history`` dicts;
            all runs of a label must have the same number of outer iterations.
        metrics: history keys to plot, one panel each (e.g. "learner_return", "expert_policy_kl").
        references: {metric: value} drawn as a dashed line, e.g. ``gsiirl.marl(game)``'s returns.
        titles: {metric: panel title} (default: the metric's name).
        path: if given, the figure is written there as PNG (atomically) and closed.
    """
    import matplotlib.pyplot as plt

    if isinstance(metrics, str) or not metrics:
        raise ValueError(f"metrics: expected a non-empty list of metric names, got {metrics!r}")
    if not isinstance(histories, Mapping) or not histories:
        raise ValueError("histories: expected a non-empty dict {label: [FitResult or history per seed]}")
    references, titles = dict(references or {}), dict(titles or {})
    figure, axes = plt.subplots(1, len(metrics), figsize=(4.5 * len(metrics), 4), squeeze=False)
    markers = False
    for ax, metric in zip(axes[0], metrics):
        markers |= plot_history_panel(ax, histories, metric, reference=references.get(metric))
        ax.set_title(titles.get(metric, metric))
    axes[0][0].legend()
    figure.tight_layout()
    note = NOTE + ("; " + NOTE_PARTS["single"] if markers else "")
    figure.text(0.5, 0.0, note, ha="center", va="top", fontsize=8, color="dimgray")
    if path is not None:
        save_figure(figure, Path(path))
    return figure
