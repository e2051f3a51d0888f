"""Shared plotting helpers for the experiments' figures (matplotlib, Agg backend, PNG output).

* :func:`seed_curves` — one metric of one method as a [seeds, iterations] array from a results dict;
* :func:`seed_count` — how many seeds a [seeds, iterations] array actually plots (the legend's n);
* :func:`plot_band` — mean ± std band over seeds against the iteration;
* :func:`plot_reference_line` — MARL (one value per seed by design) as a dashed horizontal line ± std;
* :func:`plot_single_iteration` — a learning method run for one iteration: a marker ± std bar at 1;
* :func:`plot_methods` — the paper's panel: GSIIRL and MA-IRL bands with MARL as a horizontal line,
  every legend entry saying its number of seeds;
* :func:`add_statistics_note` — the figure's note saying what lines, bands and markers are;
* :func:`edge_label_points` — where to write edge labels of a drawn graph so they do not overlap;
* :func:`save_figure` — atomic PNG write.

Statistics everywhere: mean over the seeds with a finite value, ± one population standard deviation
(``numpy.std``, ddof 0).
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from gsiirl.io.atomic import atomic_write  # noqa: E402

METHOD_STYLE = {
    "gsiirl": {"label": "GSIIRL", "color": "tab:blue"},
    "ma-irl": {"label": "MA-IRL", "color": "tab:orange"},
    "marl": {"label": "MARL (true rewards)", "color": "black"},
}
REFERENCE_METHODS = ("marl",)  # one value per seed by design: drawn as a dashed horizontal line
NOTE_PARTS = {
    "band": "line: mean over seeds; band: ± 1 std (ddof 0)",
    "seeds": "thin lines: single seeds",
    "reference": "dashed: MARL mean ± 1 std",
    "single": "marker: one-iteration run, mean ± 1 std",
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


def seed_count(curves: np.ndarray) -> int:
    """Number of rows (seeds) of a [seeds, iterations] array with at least one finite value."""
    return int(np.isfinite(curves).any(axis=1).sum()) if curves.size else 0


def _trim(curves: np.ndarray) -> np.ndarray:
    """[seeds, K'] with trailing iterations that no seed has a finite value for removed."""
    finite = np.flatnonzero(np.isfinite(curves).any(axis=0)) if curves.size else []
    return curves[:, : finite[-1] + 1] if len(finite) else np.zeros((0, 0))


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


def plot_single_iteration(ax, values: np.ndarray, *, label: str, color: str,
                          limits: tuple[float, float] | None = None) -> None:
    """A learning method run for one iteration: marker at (1, mean of ``values`` [seeds]) with a ± std
    error bar (clipped to ``limits``), so that it is not mistaken for MARL's horizontal line."""
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return
    mean, std = float(values.mean()), float(values.std())
    low, high = mean - std, mean + std
    if limits is not None:
        low, high = max(low, limits[0]), min(high, limits[1])
    yerr = [[max(mean - low, 0.0)], [max(high - mean, 0.0)]]  # (a mean outside limits: no bar that side)
    ax.errorbar([1], [mean], yerr=yerr, fmt="o", color=color, capsize=4, label=label)


def plot_methods(ax, results: dict, metric: str, *, title: str, ylabel: str, show_seeds: bool = False,
                 limits: tuple[float, float] | None = None) -> set[str]:
    """Learning methods as bands over iterations (``show_seeds``: plus one thin line per seed), MARL as a
    dashed horizontal line, a learning method with one iteration as a marker ± std at iteration 1; each
    legend entry says the number n of seeds drawn. ``limits``: the metric's range, bands and bars are
    clipped to it (mean ± std of a rate near 0 would otherwise draw negative rates). Integer x ticks.
    Returns the kinds drawn (keys of :data:`NOTE_PARTS`) for :func:`add_statistics_note`."""
    kinds: set[str] = set()
    for method in METHOD_STYLE:
        curves = _trim(seed_curves(results, method, metric))
        if seed_count(curves):
            kinds |= _plot_method(ax, method, curves, show_seeds=show_seeds, limits=limits)
    ax.set_title(title)
    ax.set_xlabel("iteration")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # (1: also for 0.5..1.5)
    if "band" not in kinds:  # nothing spans iterations: centre iteration 1
        ax.set_xlim(0.5, 1.5)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if handles:  # in METHOD_STYLE's order (matplotlib lists error bars after lines)
        order = sorted(range(len(labels)), key=lambda i: _method_rank(labels[i]))
        ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=8)
    return kinds


def _method_rank(label: str) -> int:
    ranks = [rank for rank, style in enumerate(METHOD_STYLE.values()) if label.startswith(style["label"] + " (n=")]
    return ranks[0] if ranks else len(METHOD_STYLE)


def _plot_method(ax, method: str, curves: np.ndarray, *, show_seeds: bool,
                 limits: tuple[float, float] | None) -> set[str]:
    """Draw one method's [seeds, iterations] ``curves`` in its style; returns the kinds drawn."""
    style = METHOD_STYLE[method]
    label, color = f"{style['label']} (n={seed_count(curves)})", style["color"]
    if curves.shape[1] > 1:
        plot_band(ax, curves, label=label, color=color, show_seeds=show_seeds, limits=limits)
        return {"band", "seeds"} if show_seeds else {"band"}
    if method in REFERENCE_METHODS:
        plot_reference_line(ax, curves[:, 0], label=label, color=color, limits=limits)
        return {"reference"}
    plot_single_iteration(ax, curves[:, 0], label=label, color=color, limits=limits)
    return {"single"}


def statistics_note(kinds: set[str]) -> str:
    """One line saying what the drawn ``kinds`` (keys of :data:`NOTE_PARTS`) show, and what n counts."""
    parts = [text for kind, text in NOTE_PARTS.items() if kind in kinds]
    return "; ".join(parts + ["n: seeds drawn"]) if parts else ""


def add_statistics_note(fig, kinds: set[str]) -> None:
    """Small note under the figure (kept in the PNG by ``save_figure``'s tight bounding box)."""
    note = statistics_note(kinds)
    if note:
        fig.text(0.5, 0.0, note, ha="center", va="top", fontsize=8, color="dimgray")


def edge_label_points(starts, ends, *, rad: float = 0.15, avoid=(), label_gap: tuple[float, float] = (0.3, 0.15),
                      node_gap: float = 0.25, fractions=(0.5, 0.35, 0.65, 0.25, 0.75)) -> np.ndarray:
    """[E, 2] positions for labels of edges drawn as matplotlib ``arc3`` curves of curvature ``rad`` from
    ``starts`` [E, 2] to ``ends`` [E, 2] (data units, equal aspect). Per edge, the first point along its
    arc at ``fractions`` that is at least ``label_gap`` (x, y) from every earlier label and ``node_gap``
    from every ``avoid`` point [N, 2] (the nodes); the arc's midpoint if none is free."""
    avoid = np.asarray(avoid, dtype=float).reshape(-1, 2)
    placed: list[np.ndarray] = []
    for start, end in zip(np.asarray(starts, dtype=float), np.asarray(ends, dtype=float)):
        candidates = [_arc_point(start, end, rad, t) for t in fractions]
        free = [point for point in candidates if _is_free(point, placed, avoid, label_gap, node_gap)]
        placed.append(free[0] if free else candidates[0])
    return np.array(placed, dtype=float).reshape(-1, 2)


def _arc_point(start: np.ndarray, end: np.ndarray, rad: float, t: float) -> np.ndarray:
    """[2] point at parameter t of matplotlib's ``arc3,rad`` quadratic Bezier from start [2] to end [2]."""
    (dx, dy) = end - start
    control = (start + end) / 2 + rad * np.array([dy, -dx])
    return (1 - t) ** 2 * start + 2 * t * (1 - t) * control + t**2 * end


def _is_free(point, placed, avoid, label_gap, node_gap) -> bool:
    clear_of_labels = all(np.any(np.abs(point - other) >= label_gap) for other in placed)
    return clear_of_labels and bool(np.all(np.linalg.norm(avoid - point, axis=1) >= node_gap))


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
