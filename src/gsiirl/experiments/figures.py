"""Shared plotting helpers for the experiments' figures (matplotlib, Agg backend, PNG output).

* :func:`seed_curves` — one metric of one method as a [seeds, iterations] array from a results dict;
* :func:`plot_band` — mean ± std band over seeds against the iteration;
* :func:`plot_reference_line` — a method without iterations (MARL) as a horizontal line ± std;
* :func:`plot_methods` — the paper's panel: GSIIRL and MA-IRL bands with MARL as a horizontal line;
* :func:`save_figure` — atomic PNG write.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gsiirl.io.atomic import atomic_write  # noqa: E402

METHOD_STYLE = {
    "gsiirl": {"label": "GSIIRL", "color": "tab:blue"},
    "ma-irl": {"label": "MA-IRL", "color": "tab:orange"},
    "marl": {"label": "MARL (true rewards)", "color": "black"},
}


def seed_curves(results: dict, method: str, metric: str) -> np.ndarray:
    """[seeds, iterations] float array (NaN for missing / null entries; shorter runs padded with NaN)."""
    seeds = results.get("methods", {}).get(method, {}).get("seeds", {})
    rows = [seeds[key].get(metric, []) for key in sorted(seeds, key=int)]
    if not rows:
        return np.zeros((0, 0))
    length = max(len(row) for row in rows)
    curves = np.full((len(rows), length), np.nan)
    for index, row in enumerate(rows):
        curves[index, : len(row)] = [np.nan if v is None else float(v) for v in row]
    return curves


def plot_band(ax, curves: np.ndarray, *, label: str, color: str, alpha: float = 0.2,
              show_seeds: bool = False, limits: tuple[float, float] | None = None) -> None:
    """Mean over seeds (line) ± one standard deviation (band) against iterations 1..K; with
    ``show_seeds`` every seed's curve is drawn too (thin lines), so an outlier seed is visible as such.
    ``limits`` (lo, hi): the metric's range (a rate's [0, 1]); the band is clipped to it."""
    if curves.size == 0:
        return
    with np.errstate(invalid="ignore"), _quiet_nan_warnings():
        mean = np.nanmean(curves, axis=0)
        std = np.nanstd(curves, axis=0)
    iterations = np.arange(1, curves.shape[1] + 1)
    if show_seeds:
        for curve in curves:
            ax.plot(iterations, curve, color=color, alpha=0.3, linewidth=0.6)
    ax.plot(iterations, mean, color=color, label=label)
    low, high = mean - std, mean + std
    if limits is not None:
        low, high = np.clip(low, *limits), np.clip(high, *limits)
    ax.fill_between(iterations, low, high, color=color, alpha=alpha, linewidth=0)


def plot_reference_line(ax, values: np.ndarray, *, label: str, color: str = "black", alpha: float = 0.1,
                        limits: tuple[float, float] | None = None) -> None:
    """Horizontal line at the mean of ``values`` (one per seed) with a ± std band (clipped to ``limits``)."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return
    mean, std = float(values.mean()), float(values.std())
    ax.axhline(mean, color=color, linestyle="--", label=label)
    if std > 0:
        low, high = mean - std, mean + std
        if limits is not None:
            low, high = max(low, limits[0]), min(high, limits[1])
        ax.axhspan(low, high, color=color, alpha=alpha, linewidth=0)


def plot_methods(ax, results: dict, metric: str, *, title: str, ylabel: str, show_seeds: bool = False,
                 limits: tuple[float, float] | None = None) -> None:
    """Learning methods as bands over iterations (``show_seeds``: plus one thin line per seed); methods
    with one value per seed as horizontal lines. ``limits``: the metric's range, the bands are clipped
    to it (mean ± std of a rate near 0 would otherwise draw negative rates)."""
    for method in ("gsiirl", "ma-irl", "marl"):
        curves = seed_curves(results, method, metric)
        if curves.size == 0:
            continue
        style = METHOD_STYLE[method]
        if curves.shape[1] == 1:
            plot_reference_line(ax, curves[:, 0], label=style["label"], color=style["color"], limits=limits)
        else:
            plot_band(ax, curves, label=style["label"], color=style["color"], show_seeds=show_seeds,
                      limits=limits)
    ax.set_title(title)
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)


def save_figure(fig, path: Path, dpi: int = 120) -> Path:
    """Save ``fig`` as PNG atomically and close it; returns the path."""
    try:
        return atomic_write(path, lambda stream: fig.savefig(stream, dpi=dpi, format="png", bbox_inches="tight"))
    finally:
        plt.close(fig)


class _quiet_nan_warnings:
    """Silence numpy's "mean of empty slice" warnings for all-NaN columns."""

    def __enter__(self):
        import warnings

        self._context = warnings.catch_warnings()
        self._context.__enter__()
        warnings.simplefilter("ignore", category=RuntimeWarning)

    def __exit__(self, *exc):
        return self._context.__exit__(*exc)
