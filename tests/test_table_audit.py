"""Table 1 and results.json from a reader's side: numbers recomputed by hand from per-seed series,
diverged seeds said wherever a table compares means, and files that break the schema refused by name."""

import csv
import io
import json
import math

import pytest

from gsiirl.cli.reproduce import build_table
from gsiirl.experiments.results_file import ResultsFileError, load_results, summarize


def _experiment(seeds_by_method: dict[str, dict]) -> dict:
    """A results dict as the runner holds it: per-seed series plus the ``final`` it derives from them."""
    return {"config": {"seeds": max(len(s) for s in seeds_by_method.values())},
            "methods": {m: {"seeds": seeds, "final": summarize(seeds)} for m, seeds in seeds_by_method.items()}}


def _row(markdown: str, section: str, label: str) -> list[str]:
    part = markdown.split(section)[1].split("\n\n**")[0]
    line = next(line for line in part.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")][1:]


def test_table1_cells_are_the_last_value_per_seed_with_population_std():
    # learner series end at 1, 2, 6 (earlier values must not count): mean 3, ddof-0 std sqrt(14/3)
    marl = {str(s): {"learner_return": [v], "expert_return": [-v]} for s, v in enumerate((1.0, 2.0, 6.0))}
    ours = {str(s): {"learner_return": [100.0, v], "expert_return": [-100.0, -v]}
            for s, v in enumerate((1.0, 2.0, 6.0))}
    markdown, text = build_table({"security": _experiment({"marl": marl, "gsiirl": ours, "ma-irl": ours})})
    row = next(r for r in csv.DictReader(io.StringIO(text))
               if (r["player"], r["method"], r["experiment"]) == ("learner", "GSIIRL", "CS"))
    assert float(row["mean"]) == pytest.approx(3.0)
    assert float(row["std"]) == pytest.approx(math.sqrt(14 / 3))  # ddof 1 would be sqrt(7) = 2.65
    assert (row["n"], row["not_finite"], row["seeds"]) == ("3", "0", "3")
    assert _row(markdown, "**Learner** (ours | paper)", "GSIIRL")[4] == "3.00 ± 2.16"


def test_verdicts_say_which_seeds_were_left_out_as_not_finite():
    marl = {str(s): {"learner_return": [v], "expert_return": [v]} for s, v in enumerate((1.0, 2.0, 3.0))}
    ours = {"0": {"learner_return": [1.5], "expert_return": [None]},
            "1": {"learner_return": [2.5], "expert_return": [None]},
            "2": {"learner_return": [None], "expert_return": [None]}}
    markdown, _ = build_table({"security": _experiment({"marl": marl, "gsiirl": ours, "ma-irl": marl})})
    for section in ("**Within noise of MARL?**", "**Within MARL's own std?**"):
        cells = _row(markdown, section, "GSIIRL")  # MPE, HRI, CS learner, then MPE, HRI, CS expert
        # learner: 2.0 over two seeds against MARL 2.0 — but the third seed diverged, which the verdict says
        assert cells[2] == "yes (+0.00) [not finite: 1 GSIIRL seed]"
        assert cells[5] == "— [not finite: 3 GSIIRL seeds]"  # every seed diverged: no verdict, and why
        assert _row(markdown, section, "MA-IRL")[2] == "yes (+0.00)"


def test_reward_transfer_pairs_only_seeds_where_marl_has_a_finite_value():
    # MARL learner: seed 1 diverged (null); the pairs are seeds 0 and 2 (MARL 0 and 4, std 2 over them).
    marl = {"0": {"learner_return": [0.0], "expert_return": [0.0]},
            "1": {"learner_return": [None], "expert_return": [0.0]},
            "2": {"learner_return": [4.0], "expert_return": [0.0]}}
    retrained = {str(s): {"learner_return": [0.0], "expert_return": [0.0], "retrained_learner_return": [1.0],
                          "retrained_expert_return": [0.0]} for s in range(3)}
    markdown, _ = build_table({"hri": _experiment({"marl": marl, "gsiirl": retrained, "ma-irl": retrained})})
    cells = _row(markdown, "**Reward transfer**", "GSIIRL")  # MPE learner, HRI learner, MPE expert, HRI expert
    # gaps +1, -3 → -1 ± 2; |-1| ≤ max(retrained std 0, MARL std 2 over the pairs) → yes (a NaN in MARL's
    # std, from the diverged seed, used to drop MARL's std from the comparison and say NO)
    assert cells[1] == "1.00 ± 0.00; paired gap -1.00 ± 2.00 (n=2), yes"
    assert cells[3] == "0.00 ± 0.00; paired gap +0.00 ± 0.00, yes"


def test_reward_transfer_survives_a_marl_seed_without_the_metric():
    marl = {"0": {"learner_return": [0.0], "expert_return": [0.0]}, "1": {"expert_return": [0.0]}}
    retrained = {s: {"learner_return": [0.0], "expert_return": [0.0], "retrained_learner_return": [0.5],
                     "retrained_expert_return": [0.0]} for s in ("0", "1")}
    markdown, _ = build_table({"mpe": _experiment({"marl": marl, "gsiirl": retrained, "ma-irl": retrained})})
    assert _row(markdown, "**Reward transfer**", "GSIIRL")[0] == "0.50 ± 0.00; paired gap +0.50 ± 0.00 (n=1), NO"


def test_interaction_section_pairs_gsiirl_interaction_with_marl_and_appears_only_with_the_metric():
    marl = {"0": {"learner_return": [1.0], "expert_return": [-1.0]}, "1": {"learner_return": [3.0], "expert_return": [-3.0]}}
    plain = {s: {"learner_return": [0.0], "expert_return": [0.0]} for s in ("0", "1")}
    markdown, _ = build_table({"hri": _experiment({"marl": marl, "gsiirl": plain, "ma-irl": plain})})
    assert "**Interaction**" not in markdown  # results written before the metric existed: no empty table
    ours = {"0": {"learner_return": [0.0], "expert_return": [0.0], "interaction_learner_return": [1.5],
                  "interaction_expert_return": [-1.0]},
            "1": {"learner_return": [0.0], "expert_return": [0.0], "interaction_learner_return": [1.5],
                  "interaction_expert_return": [-6.0]}}
    markdown, csv_text = build_table({"hri": _experiment({"marl": marl, "gsiirl": ours, "ma-irl": plain})})
    cells = _row(markdown, "**Interaction**", "GSIIRL")  # MPE learner, HRI learner, MPE expert, HRI expert
    # learner: gaps +0.5, -1.5 → -0.5 ± 1.0; |-0.5| ≤ max(0, MARL std 1) → yes
    assert cells[1] == "1.50 ± 0.00; paired gap -0.50 ± 1.00, yes"
    # expert: -3.5 ± 2.5; gaps 0, -3 → -1.5 ± 1.5 ≤ max(2.5, 1) → yes
    assert cells[3] == "-3.50 ± 2.50; paired gap -1.50 ± 1.50, yes"
    assert cells[0] == "—" and "MA-IRL" not in markdown.split("**Interaction**")[1]
    rows = [row for row in csv.DictReader(io.StringIO(csv_text)) if row["method"] == "GSIIRL interaction"]
    assert [(row["player"], row["experiment"], float(row["mean"])) for row in rows] == [
        ("learner", "HRI", 1.5), ("expert", "HRI", -3.5)]


def _results_file(tmp_path, learner_values) -> "Path":  # noqa: F821
    document = {"schema_version": 1, "experiment": "security",
                "config": {"experiment": "security", "methods": ["marl"], "seeds": len(learner_values),
                           "iterations": 1, "options": {}},
                "versions": {}, "methods": {"marl": {"seeds": {
                    str(s): {"learner_return": [v], "expert_return": [0.0]} for s, v in enumerate(learner_values)}}}}
    path = tmp_path / "results.json"
    path.write_text(json.dumps(document))  # Python's json writes NaN / Infinity as bare literals
    return path


@pytest.mark.parametrize("value, shown", [(float("nan"), "nan"), (float("inf"), "inf"), (-float("inf"), "-inf")])
def test_load_results_refuses_non_finite_literals_naming_the_field(tmp_path, value, shown):
    path = _results_file(tmp_path, [1.0, value])
    with pytest.raises(ResultsFileError, match=rf"methods\.marl\.seeds\.1\.learner_return\[0\]: {shown} is not "
                                               r"allowed \(non-finite values are stored as null\)"):
        load_results(path)


def test_load_results_reads_null_as_a_counted_not_finite_seed(tmp_path):
    final = load_results(_results_file(tmp_path, [1.0, None, 3.0]))["methods"]["marl"]["final"]["learner_return"]
    assert final == {"mean": 2.0, "std": 1.0, "n": 2, "not_finite": 1}


def _doc_block(page: str, marker: str) -> str:
    """The ```python block of ``docs/<page>`` that contains ``marker``."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / page).read_text()
    return next(block for block in re.findall(r"```python\n(.*?)```", text, flags=re.S) if marker in block)


def test_file_format_recipe_recomputes_final_and_the_table_from_a_real_results_file(monkeypatch, tmp_path):
    """docs/file_format.md's plain-json reader, run on a file the runner wrote (one seed diverged at its last
    iteration, another earlier only), gives ``final`` and Table 1's csv cell exactly."""
    import sys
    import types

    import numpy as np

    from gsiirl.experiments import runner

    module = types.ModuleType("audit_toy_experiment")
    module.DEFAULT_OPTIONS = {}

    def make_unit_runner(options):
        def run(method, seed, iterations, progress):
            values = np.random.default_rng([seed, len(method)]).normal(size=iterations).cumsum()
            if method == "gsiirl" and seed == 1:
                values[-1] = np.nan  # diverged at the last iteration: left out, counted
            if method == "gsiirl" and seed == 2:
                values[0] = np.inf  # diverged early only: the last value still counts
            if method == "marl":
                return {"learner_return": [values[-1]], "expert_return": [-values[-1]]}
            return {"learner_return": values.tolist(), "expert_return": (-values).tolist()}
        return run

    module.make_unit_runner = make_unit_runner
    monkeypatch.setitem(sys.modules, "audit_toy_experiment", module)
    monkeypatch.setitem(runner.EXPERIMENTS, "security", "audit_toy_experiment")  # tabled as the CS column
    results = runner.run_experiment("security", out_dir=tmp_path, seeds=4, iterations=3)

    namespace: dict = {}
    exec(_doc_block("file_format.md", "def table_cell"), namespace)
    path = tmp_path / "results.json"
    on_disk = json.loads(path.read_text())
    assert on_disk["methods"]["gsiirl"]["seeds"]["1"]["learner_return"][-1] is None
    assert on_disk["methods"]["gsiirl"]["seeds"]["2"]["learner_return"][0] is None
    _, text = build_table({"security": load_results(path)})
    csv_rows = list(csv.DictReader(io.StringIO(text)))
    for method, label in (("gsiirl", "GSIIRL"), ("ma-irl", "MA-IRL"), ("marl", "MARL")):
        mean, std, n, not_finite = namespace["table_cell"](path, method, "learner_return")
        final = results["methods"][method]["final"]["learner_return"]
        assert (mean, n, final.get("not_finite", 0)) == (pytest.approx(final["mean"]), final["n"], not_finite)
        assert std == pytest.approx(final["std"], abs=1e-12)
        row = next(r for r in csv_rows if (r["player"], r["method"], r["experiment"]) == ("learner", label, "CS"))
        assert (float(row["mean"]), float(row["std"])) == (pytest.approx(mean), pytest.approx(std, abs=1e-12))
        assert (int(row["n"]), int(row["not_finite"]), int(row["seeds"])) == (n, not_finite, 4)
    assert namespace["table_cell"](path, "gsiirl", "learner_return")[2:] == (3, 1)


def test_load_results_refuses_an_empty_metric_list_naming_the_field(tmp_path):
    """An empty series has no last value: summarize() would silently leave the seed out of every cell."""
    path = _results_file(tmp_path, [1.0, 2.0])
    document = json.loads(path.read_text())
    document["methods"]["marl"]["seeds"]["1"]["learner_return"] = []
    path.write_text(json.dumps(document))
    with pytest.raises(ResultsFileError, match=r"methods\.marl\.seeds\.1\.learner_return: expected a non-empty "
                                               r"list of numbers, got \[\]"):
        load_results(path)


def test_a_unit_that_returns_an_empty_metric_series_is_refused_by_name():
    from gsiirl.experiments.results_file import clean_metrics

    assert clean_metrics({"learner_return": [1.0, float("nan")]}) == {"learner_return": [1.0, None]}
    with pytest.raises(ValueError, match=r"metric 'expert_return' has no values"):
        clean_metrics({"learner_return": [1.0], "expert_return": []})


def test_the_committed_table1_csv_and_md_hold_the_same_numbers():
    """docs/table1.md and docs/table1.csv come out of one `gsiirl reproduce`: every mean ± std of the csv (two
    decimals, as the markdown prints it) appears in the markdown. Guards against committing one without the other
    (session 36 committed 0.4.0's table1.md beside 0.3.0's table1.csv; found and fixed in session 38)."""
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs"
    markdown = (docs / "table1.md").read_text(encoding="utf-8")
    rows = list(csv.DictReader(io.StringIO((docs / "table1.csv").read_text(encoding="utf-8"))))
    assert rows
    missing = [f"{row['player']} {row['method']} {row['experiment']}: {float(row['mean']):.2f} ± {float(row['std']):.2f}"
               for row in rows if f"{float(row['mean']):.2f} ± {float(row['std']):.2f}" not in markdown]
    assert not missing, missing
