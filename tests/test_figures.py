"""Figure labelling: legends say n (seeds drawn) per method, a note says what line / band / marker are,
integer iteration ticks, MARL alone drawn as a horizontal line (a one-iteration learning run is a marker
± std at iteration 1), panels and attack-graph edge labels do not overlap."""

import itertools

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from gsiirl.experiments import figures  # noqa: E402

NOTE = "line: mean over seeds; band: ± 1 std (ddof 0)"


def _results(metrics=("learner_return", "expert_return"), scale=1.0) -> dict:
    """GSIIRL: 2 seeds with values + 1 all-null seed, 3 iterations; MARL: 3 seeds, one value each;
    MA-IRL: 4 seeds, one iteration (``--iters 1`` / the adversarial variant)."""
    rng = np.random.default_rng(0)

    def seeds(count: int, iterations: int) -> dict:
        return {str(s): {m: (scale * rng.uniform(0.2, 0.8, iterations)).tolist() for m in metrics}
                for s in range(count)}

    gsiirl = seeds(2, 3)
    gsiirl["2"] = {m: [None, None, None] for m in metrics}  # a seed without a finite value is not counted
    return {"config": {"options": {}}, "methods": {"gsiirl": {"seeds": gsiirl}, "marl": {"seeds": seeds(3, 1)},
                                                  "ma-irl": {"seeds": seeds(4, 1)}}}


@pytest.fixture
def panel():
    fig, ax = plt.subplots()
    results = _results()
    kinds = figures.plot_methods(ax, results, "learner_return", title="t", ylabel="y")
    fig.canvas.draw()
    yield ax, results, kinds
    plt.close(fig)


def _values(results: dict, method: str) -> np.ndarray:
    return figures.seed_curves(results, method, "learner_return")


def test_legend_says_the_number_of_seeds_drawn_per_method(panel):
    ax, _, kinds = panel
    texts = [text.get_text() for text in ax.get_legend().get_texts()]
    assert texts == ["GSIIRL (n=2)", "MA-IRL (n=4)", "MARL (true rewards) (n=3)"]
    assert kinds == {"band", "reference", "single"}
    assert figures.statistics_note(kinds).startswith(NOTE)


def test_seed_count_counts_rows_with_a_finite_value():
    curves = np.array([[1.0, np.nan], [np.nan, np.nan], [np.nan, 2.0]])
    assert figures.seed_count(curves) == 2 and figures.seed_count(np.zeros((0, 0))) == 0


def test_iteration_axis_has_integer_ticks(panel):
    ax, _, _ = panel
    assert isinstance(ax.xaxis.get_major_locator(), MaxNLocator)
    low, high = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if low <= t <= high]
    assert ticks == [1.0, 2.0, 3.0]


def test_marl_is_a_horizontal_line_and_a_one_iteration_run_a_marker_at_iteration_1(panel):
    ax, results, _ = panel
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert [line.get_label() for line in dashed] == ["MARL (true rewards) (n=3)"]
    np.testing.assert_allclose(np.asarray(dashed[0].get_xdata(), float), [0, 1])  # axhline: axes-fraction x, full width
    np.testing.assert_allclose(np.asarray(dashed[0].get_ydata(), float), _values(results, "marl").mean())
    (bars,) = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert bars.get_label() == "MA-IRL (n=4)"
    marker = bars.lines[0]
    values = _values(results, "ma-irl")[:, 0]
    np.testing.assert_allclose(np.asarray(marker.get_xdata(), float), [1])
    np.testing.assert_allclose(np.asarray(marker.get_ydata(), float), [values.mean()])
    (segment,) = bars.lines[2][0].get_segments()
    np.testing.assert_allclose(segment[:, 1], [values.mean() - values.std(), values.mean() + values.std()])


def test_one_iteration_bars_are_clipped_to_the_metric_range():
    fig, ax = plt.subplots()
    figures.plot_single_iteration(ax, np.array([0.0, 0.0, 0.3]), label="MA-IRL (n=3)", color="tab:orange",
                                  limits=(0.0, 1.0))
    (segment,) = ax.containers[0].lines[2][0].get_segments()
    np.testing.assert_allclose(segment[:, 1], [0.0, 0.1 + np.std([0.0, 0.0, 0.3])])
    plt.close(fig)


def test_only_one_iteration_everywhere_centres_iteration_1():
    results = _results()
    for seed in results["methods"]["gsiirl"]["seeds"].values():
        seed["learner_return"] = seed["learner_return"][:1]
    fig, ax = plt.subplots()
    figures.plot_methods(ax, results, "learner_return", title="t", ylabel="y")
    fig.canvas.draw()
    assert ax.get_xlim() == (0.5, 1.5)
    assert [t for t in ax.get_xticks() if 0.5 <= t <= 1.5] == [1.0]
    assert len([c for c in ax.containers if isinstance(c, ErrorbarContainer)]) == 2  # GSIIRL and MA-IRL
    plt.close(fig)


def test_edge_labels_move_along_the_edge_off_other_labels_and_nodes():
    # two crossing edges with the same midpoint, and an edge whose midpoint is a node
    starts = np.array([[0.0, 0.0], [1.0, 0.0], [-1.0, -1.0]])
    ends = np.array([[1.0, -1.0], [0.0, -1.0], [1.0, -1.0]])
    points = figures.edge_label_points(starts, ends, rad=0.0, avoid=[[0.0, -1.0]])
    np.testing.assert_allclose(points[0], [0.5, -0.5])  # first label: its midpoint
    assert np.any(np.abs(points[1] - points[0]) >= (0.3, 0.15))
    assert np.linalg.norm(points[2] - [0.0, -1.0]) >= 0.25
    for start, end, point in zip(starts, ends, points):  # still on its (straight) edge
        (dx, dy), (px, py) = end - start, point - start
        assert abs(dx * py - dy * px) < 1e-12


def _drawn_figure(monkeypatch, tmp_path, module, results):
    """Run ``module.make_figure`` (PNG written to ``tmp_path``); returns (figure, renderer) drawn."""
    drawn = []
    save = figures.save_figure

    def keep(fig, path, dpi=120):
        drawn.append(fig)
        return save(fig, path, dpi)

    monkeypatch.setattr(figures, "save_figure", keep)
    (path,) = module.make_figure(results, tmp_path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (fig,) = drawn
    canvas = FigureCanvasAgg(fig)  # save_figure closed the figure (and detached its pyplot canvas)
    canvas.draw()
    return fig, canvas.get_renderer()


def _legends(fig) -> list[list[str]]:
    return [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes if ax.get_legend()]


def _hri_results() -> dict:
    results = _results(("learner_return", "expert_return", "collision_rate", "goal_rate"))
    trajectory = {"trajectory_robot_x": [0.0, 0.0, 0.0], "trajectory_robot_y": [-0.4, -0.3, -0.2],
                  "trajectory_human_x": [0.45, 0.35, 0.25], "trajectory_human_y": [0.0, 0.0, 0.0]}
    for seed in ("0", "1"):
        results["methods"]["gsiirl"]["seeds"][seed].update(trajectory)
    return results


@pytest.mark.parametrize("name", ["mpe", "security", "hri"])
def test_every_learning_curve_panel_says_n_and_every_figure_what_line_and_band_are(monkeypatch, tmp_path, name):
    import importlib

    module = importlib.import_module(f"gsiirl.experiments.{name}")
    fig, _ = _drawn_figure(monkeypatch, tmp_path, module, _hri_results() if name == "hri" else _results())
    curves = [texts for texts in _legends(fig) if any(t.startswith("GSIIRL") for t in texts)]
    assert len(curves) == {"mpe": 2, "security": 2, "hri": 4}[name]
    assert all(texts == ["GSIIRL (n=2)", "MA-IRL (n=4)", "MARL (true rewards) (n=3)"] for texts in curves)
    assert any(text.get_text().startswith(NOTE) for text in fig.texts)


def test_mpe_right_panel_labels_stay_clear_of_the_left_panel(monkeypatch, tmp_path):
    """Wide tick labels (returns in the thousands) used to push the right y label into the left panel."""
    from gsiirl.experiments import mpe

    fig, renderer = _drawn_figure(monkeypatch, tmp_path, mpe, _results(scale=-12345.0))
    left, right = fig.axes
    assert left.get_tightbbox(renderer).x1 <= right.get_tightbbox(renderer).x0


def test_attack_graph_edge_labels_cover_no_other_label_nor_node(monkeypatch, tmp_path):
    from gsiirl.experiments import security

    fig, renderer = _drawn_figure(monkeypatch, tmp_path, security, _results())
    graph_ax = fig.axes[0]
    labels = [t.get_window_extent(renderer) for t in graph_ax.texts if t.get_fontsize() == 6]
    assert len(labels) == 10  # seed 0's graph: 10 edges
    for a, b in itertools.combinations(labels, 2):
        assert not a.overlaps(b)
    nodes = np.concatenate([c.get_offset_transform().transform(c.get_offsets()) for c in graph_ax.collections])
    for box, (x, y) in itertools.product(labels, nodes):
        assert not box.contains(x, y)


def test_plot_histories_draws_mean_and_std_of_the_seeds_and_names_bad_input(tmp_path):
    """Ground truth: the plotted line is the seeds' mean and the band's edges mean ± std (ddof 0), computed
    here by hand; FitResults and history dicts are both accepted; mistakes are named."""
    import gsiirl
    from gsiirl.algorithms.config import FitResult

    seeds = [{"learner_return": [1.0, 2.0, 4.0]}, {"learner_return": [3.0, 2.0, 0.0]}]
    as_result = FitResult(None, None, None, seeds[1], {})
    figure = gsiirl.plot_histories({"mine": [seeds[0], as_result]}, ["learner_return"],
                                   references={"learner_return": 5.0}, path=tmp_path / "runs.png")
    assert (tmp_path / "runs.png").stat().st_size > 0
    ax = figure.axes[0]
    line = next(line for line in ax.get_lines() if line.get_label() == "mine (n=2)")
    np.testing.assert_allclose(line.get_ydata(), [2.0, 2.0, 2.0])
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    np.testing.assert_allclose(sorted(set(np.round(band, 6))), [0.0, 1.0, 2.0, 3.0, 4.0])  # 2 ± (1, 0, 2)
    assert any(line.get_linestyle() == "--" and line.get_ydata()[0] == 5.0 for line in ax.get_lines())
    single = gsiirl.plot_histories({"one": as_result}, ["learner_return"])  # one run, not in a list
    np.testing.assert_allclose(single.axes[0].get_lines()[0].get_ydata(), [3.0, 2.0, 0.0])
    with pytest.raises(ValueError, match=r"histories\['mine'\]\[1\]: no metric 'expert_return'"):
        gsiirl.plot_histories({"mine": [{"expert_return": [1.0]}, seeds[0]]}, ["expert_return"])
    with pytest.raises(ValueError, match=r"histories\['mine'\]: 'learner_return' has different lengths .*\[2, 3\]"):
        gsiirl.plot_histories({"mine": [seeds[0], {"learner_return": [1.0, 2.0]}]}, ["learner_return"])
    with pytest.raises(ValueError, match="metrics: expected a non-empty list"):
        gsiirl.plot_histories({"mine": seeds}, "learner_return")
    plt.close("all")


def test_plot_histories_draws_one_iteration_runs_as_a_marker_with_std():
    """Ground truth: runs with one value each (``fit(method="marl")``, ``outer_iters=1``) are listed in the
    legend, so they must be visible: a marker at iteration 1 at their mean with a ± std (ddof 0) bar, not a
    one-point line (which draws nothing)."""
    import gsiirl

    figure = gsiirl.plot_histories({"many": [{"learner_return": [1.0, 2.0]}, {"learner_return": [3.0, 4.0]}],
                                    "marl": [{"learner_return": [1.0]}, {"learner_return": [2.0]}]},
                                   ["learner_return"])
    ax = figure.axes[0]
    bars = [c for c in ax.containers if isinstance(c, ErrorbarContainer)]
    assert [bar.get_label() for bar in bars] == ["marl (n=2)"]
    marker = bars[0].lines[0]
    assert marker.get_marker() not in (None, "None", "", " ")
    np.testing.assert_allclose(marker.get_xydata(), [[1.0, 1.5]])
    segment = bars[0].lines[2][0].get_segments()[0]  # the vertical bar: 1.5 ± 0.5
    np.testing.assert_allclose(sorted(segment[:, 1]), [1.0, 2.0])
    assert "marl (n=2)" in [text.get_text() for text in ax.get_legend().get_texts()]
    assert "marker" in figure.texts[-1].get_text()  # the note says what the marker is
    plt.close("all")
