"""diagnostics/verdict_resampling.py against brute-force enumeration and hand-computed pooled statistics."""

import itertools
import json
import math
import statistics
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "diagnostics"))

from verdict_resampling import main, verdict_study  # noqa: E402

from gsiirl.experiments.results_file import SCHEMA_VERSION, save_results  # noqa: E402


def brute_force_probabilities(method, marl, table_seeds):
    """P(yes) per column over every subset, with Python's statistics module (population std) and loops."""
    subsets = list(itertools.combinations(range(len(method)), table_seeds))
    counts = np.zeros((2, method.shape[1]))
    for subset in subsets:
        for c in range(method.shape[1]):
            ours, theirs = [method[i, c] for i in subset], [marl[i, c] for i in subset]
            gap = statistics.fmean(ours) - statistics.fmean(theirs)
            larger = max(statistics.pstdev(ours), statistics.pstdev(theirs))
            counts[0, c] += abs(gap) <= larger
            counts[1, c] += abs(gap) <= statistics.pstdev(theirs)
    return counts / len(subsets)


def pool_values(rng, seeds=9):
    marl = rng.normal([5.0, -18.0], [1.5, 1.5], size=(seeds, 2))
    method = marl + rng.normal([-0.5, -2.0], [2.0, 2.5], size=(seeds, 2))
    return method, marl


def test_every_subset_is_counted_as_by_brute_force():
    method, marl = pool_values(np.random.default_rng(3))
    study = verdict_study(method, marl, table_seeds=4, draws=1_000)
    assert study["exhaustive"] and study["subsets"] == math.comb(9, 4)
    assert study == verdict_study(method, marl, table_seeds=4, draws=math.comb(9, 4))  # as many draws as subsets
    expected = brute_force_probabilities(method, marl, 4)
    for c in range(2):
        assert study["columns"][c]["p_within_larger_std"] == pytest.approx(expected[0, c], abs=1e-12)
        assert study["columns"][c]["p_within_marl_std"] == pytest.approx(expected[1, c], abs=1e-12)
    assert 0.0 < expected.min() and expected.max() < 1.0  # a pool where the verdicts really depend on the draw


def test_random_subsets_estimate_the_exhaustive_probabilities():
    method, marl = pool_values(np.random.default_rng(5), seeds=14)
    exact = verdict_study(method, marl, table_seeds=6, draws=10_000)
    sampled = verdict_study(method, marl, table_seeds=6, draws=2_000, seed=1)
    assert exact["exhaustive"] and not sampled["exhaustive"] and sampled["subsets"] == 2_000
    for c in range(2):
        for key in ("p_within_larger_std", "p_within_marl_std"):
            p = exact["columns"][c][key]
            standard_error = math.sqrt(max(p * (1 - p), 0.01) / 2_000)
            assert abs(sampled["columns"][c][key] - p) <= 4 * standard_error
    assert sampled == verdict_study(method, marl, table_seeds=6, draws=2_000, seed=1)  # same seed, same numbers


def test_pooled_statistics_by_hand_and_a_table_of_the_whole_pool():
    method = np.array([[1.0, -20.0], [3.0, -17.0], [2.0, -21.0], [6.0, -19.0]])
    marl = np.array([[2.0, -18.0], [2.5, -18.5], [4.0, -17.0], [5.5, -18.5]])
    study = verdict_study(method, marl, table_seeds=4)
    expert = study["columns"][1]
    differences = [-2.0, 1.5, -4.0, -0.5]
    assert expert["pooled_gap"] == pytest.approx(statistics.fmean(differences))
    assert expert["pooled_gap_standard_error"] == pytest.approx(statistics.stdev(differences) / 2.0)
    assert expert["median_paired_gap"] == pytest.approx(statistics.median(differences))
    assert expert["seeds_below_marl"] == 3
    # gap -1.25; stds 1.479 (method) and 0.612 (MARL): yes by the larger std, NO by MARL's
    assert expert["pooled_within_larger_std"] and not expert["pooled_within_marl_std"]
    assert (expert["p_within_larger_std"], expert["p_within_marl_std"]) == (1.0, 0.0)  # one subset: the pool
    assert study["p_all_columns_within_marl_std"] == 0.0


def test_bad_arguments_are_named():
    method, marl = pool_values(np.random.default_rng(0), seeds=5)
    with pytest.raises(ValueError, match="table_seeds"):
        verdict_study(method, marl, table_seeds=6)
    with pytest.raises(ValueError, match="table_seeds"):
        verdict_study(method, marl, table_seeds=1)
    for draws in (0, 1_000_001, 2.5):
        with pytest.raises(ValueError, match="draws"):
            verdict_study(method, marl, table_seeds=2, draws=draws)
    with pytest.raises(ValueError, match="values"):
        verdict_study(method[:4], marl, table_seeds=2)
    with pytest.raises(ValueError, match="values: expected finite"):
        verdict_study(np.where(np.eye(5, 2) > 0, np.nan, method), marl, table_seeds=2)


def write_results(path, seeds, options=None, method="gsiirl", include_marl=True, last=None):
    """A results file whose seed s has learner/expert returns s, -20 - s (method) and s + 1, -18 (MARL)."""
    def unit(values):
        return {"seeds": {str(s): {"learner_return": [0.0, values(s)[0]], "expert_return": [0.0, values(s)[1]]}
                          for s in seeds}}
    methods = {method: unit(lambda s: (float(s), -20.0 - s))}
    if include_marl:
        methods["marl"] = unit(lambda s: (s + 1.0, -18.0))
    if last is not None:  # (seed, value): that seed's last learner return is not finite (stored as null)
        methods[method]["seeds"][str(last[0])]["learner_return"][-1] = last[1]
    save_results({"schema_version": SCHEMA_VERSION, "experiment": "mpe", "versions": {},
                  "config": {"options": options or {}, "seeds": len(seeds), "iterations": 2,
                             "methods": sorted(methods)}, "methods": methods}, path)
    return path


def test_files_are_pooled_and_bad_files_are_refused(tmp_path, capsys):
    first = write_results(tmp_path / "a.json", [0, 1, 2])
    second = write_results(tmp_path / "b.json", [3, 4, 5], last=(4, None))
    out = tmp_path / "out" / "verdicts.json"
    study = main(["--results", str(first), str(second), "--table-seeds", "3", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(study))
    entry = study["methods"]["gsiirl"]
    assert entry["seeds"] == [0, 1, 2, 3, 5] and entry["not_finite_seeds"] == [4]
    assert entry["exhaustive"] and entry["subsets"] == math.comb(5, 3)
    assert entry["columns"]["learner_return"]["pooled_gap"] == pytest.approx(-1.0)
    assert entry["columns"]["expert_return"]["pooled_gap"] == pytest.approx(-2.0 - statistics.fmean([0, 1, 2, 3, 5]))
    assert "gsiirl: 5 paired seeds" in capsys.readouterr().out

    def refused(arguments, message):
        with pytest.raises(SystemExit) as stop:
            main(arguments + ["--out", str(tmp_path / "refused.json")])
        assert stop.value.code == 2 and message in capsys.readouterr().err
        assert not (tmp_path / "refused.json").exists()

    refused(["--results", str(first), str(first)], "seed 0 is in both")
    other = write_results(tmp_path / "c.json", [6, 7], options={"radius": 2.0})
    refused(["--results", str(first), str(other)], "another options")
    refused(["--results", str(write_results(tmp_path / "d.json", [0, 1], include_marl=False))], "'marl'")
    refused(["--results", str(first), "--table-seeds", "4"], "table_seeds: expected an integer in [2, 3]")
    (tmp_path / "broken.json").write_text("{")
    refused(["--results", str(tmp_path / "broken.json")], "corrupted")
