"""Damaged results files that the schema check must name in one line (ResultsFileError), not crash on."""

import json

import pytest

from gsiirl.experiments.results_file import ResultsFileError, load_results


def _write(tmp_path, seeds):
    path = tmp_path / "results.json"
    document = {"schema_version": 1, "experiment": "security", "config": {}, "versions": {},
                "methods": {"marl": {"seeds": seeds}}}
    path.write_text(json.dumps(document).replace('"HUGE"', "1" + "0" * 400))
    return path


def test_an_integer_too_large_for_a_float_is_named(tmp_path):
    path = _write(tmp_path, {"0": {"learner_return": ["HUGE"]}})  # was OverflowError (a traceback in the CLI)
    with pytest.raises(ResultsFileError, match=r"methods.marl.seeds.0.learner_return\[0\]: .* is not allowed"):
        load_results(path)


def test_a_seed_key_of_non_ascii_digits_is_named(tmp_path):
    path = _write(tmp_path, {"²": {"learner_return": [1.0]}})  # "²".isdigit() is True; int("²") fails
    with pytest.raises(ResultsFileError, match="methods.marl.seeds has a non-integer key '²'"):
        load_results(path)
