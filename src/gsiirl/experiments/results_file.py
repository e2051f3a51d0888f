"""The results file of ``gsiirl run`` (schema version 1): reading, validating, writing and summarising it.

``OUT/results.json``::

    {"schema_version": 1, "experiment": str, "config": {...}, "versions": {"gsiirl": .., "jax": .., ...},
     "methods": {METHOD: {"seeds": {"0": {"learner_return": [..per iteration..], ...}, ...},
                          "final": {"learner_return": {"mean": .., "std": .., "n": ..}, ...}}}}

``final`` holds, per metric, the mean and standard deviation (numpy's default ``ddof=0``) over seeds of each
seed's LAST value. Non-finite numbers are stored as ``null`` (JSON has no NaN); ``final`` leaves them out and
counts them (``not_finite``). ``final`` is recomputed from the seeds whenever a file is loaded. The file is
written atomically (temp file + ``os.replace``); the runner (:mod:`gsiirl.experiments.runner`) rewrites it
after every finished unit. Free of JAX.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from gsiirl.io.atomic import atomic_write_bytes

# Metrics of the interaction itself carry this prefix (gsiirl.algorithms.sample_based.INTERACTION_PREFIX;
# not imported here: this module stays free of JAX).
INTERACTION_PREFIX = "interaction_"

SCHEMA_VERSION = 1
METHODS = ("gsiirl", "ma-irl", "marl")
RESULTS_FILE = "results.json"


class ResultsFileError(ValueError):
    """A results file that cannot be read or does not follow the schema."""


def _clean_number(value):
    value = float(value)
    return value if math.isfinite(value) else None


def clean_metrics(metrics: dict) -> dict[str, list]:
    """A unit runner's {metric: per-iteration values} as the file stores them (floats; non-finite -> None)."""
    if not isinstance(metrics, dict) or not metrics:
        raise ValueError("unit runner: expected a non-empty dict of per-iteration metric lists")
    cleaned = {}
    for key, values in metrics.items():
        array = np.asarray(values, dtype=float).reshape(-1)
        if array.size == 0:  # a table reads each metric's last value: an empty series has none
            raise ValueError(f"unit runner: metric {key!r} has no values (expected at least one per unit)")
        cleaned[str(key)] = [_clean_number(v) for v in array]
    return cleaned


def summarize(seeds: dict[str, dict[str, list]]) -> dict[str, dict[str, float | int | None]]:
    """Mean ± std over seeds of each metric's LAST value (``ddof=0``): ``{"mean", "std", "n"}``, plus
    ``"not_finite"`` = the number of seeds whose last value is NaN/inf (stored as null), which are left
    out of mean and std, so a table can say that a seed diverged instead of silently averaging the rest.

    Per-unit series that are not per-iteration metrics (keys starting ``trajectory_``, e.g. the HRI
    sample trajectory's coordinates) are not summarised."""
    final: dict[str, dict] = {}
    keys = sorted({key for metrics in seeds.values() for key in metrics if not key.startswith("trajectory_")})
    for key in keys:
        ordered = [seeds[seed] for seed in sorted(seeds, key=int)]  # summation order independent of resumes
        last = [metrics[key][-1] for metrics in ordered if key in metrics and metrics[key]]
        values = np.array([v for v in last if v is not None], dtype=float)
        not_finite = len(last) - int(values.size)
        if values.size == 0:
            final[key] = {"mean": None, "std": None, "n": 0}
        else:
            final[key] = {"mean": float(values.mean()), "std": float(values.std()), "n": int(values.size)}
        if not_finite:
            final[key]["not_finite"] = not_finite
    return final


def mean_std_text(mean: float | None, std: float | None, n: int, digits: int = 3, not_finite: int = 0) -> str:
    """``"mean ± std"`` over ``n`` seeds; the mean alone for one seed (a std of one value says nothing),
    ``"n/a"`` without a value; ``not_finite`` seeds (diverged: NaN/inf, left out) are said."""
    suffix = f" [{not_finite} of {n + not_finite} seeds not finite]" if not_finite else ""
    if mean is None or n == 0:
        return "n/a" + suffix
    return (f"{mean:.{digits}f}" if n == 1 else f"{mean:.{digits}f} ± {std:.{digits}f}") + suffix


def summary_text(results: dict, labels: dict[str, str] | None = None, extra_metrics: tuple[str, ...] = ()) -> str:
    """A text table of the final iteration: mean ± std over seeds of the two returns (and ``extra_metrics``)
    per method, plus each method's paired per-seed gap to MARL on the two returns (Table 1's comparison).
    A method that also stores ``interaction_*`` metrics (sample-based GSIIRL: the learner's policy met by
    the true expert's response; tabular GSIIRL and MA-IRL: the learner's equilibrium policy for the learned
    reward against the true expert) gets a second row, "<method> interaction", read the same way, and a
    last line says what that row is.

    ``labels`` renames the columns (e.g. ``{"learner_return": "robot return"}``)."""
    labels = labels or {}
    returns = ("learner_return", "expert_return")
    columns = [(key, labels.get(key, key.replace("_", " "))) for key in returns + tuple(extra_metrics)]
    gap_names = [f"gap to MARL ({labels.get(key, key.replace('_', ' '))})" for key in returns]
    methods = results.get("methods", {})
    rows = []  # (label, metric prefix, method block)
    for method, block in methods.items():
        rows.append((method, "", block))
        if INTERACTION_PREFIX + returns[0] in block.get("final", {}):
            rows.append((f"{method} interaction", INTERACTION_PREFIX, block))
    label_width = max([8] + [len(label) for label, _, _ in rows])
    widths = [max(18, len(name)) for _, name in columns] + [max(18, len(name)) for name in gap_names]
    header = [name for _, name in columns] + gap_names
    lines = [f"{'method':<{label_width}} " + " ".join(f"{name:>{width}}" for name, width in zip(header, widths))]
    marl_seeds = methods.get("marl", {}).get("seeds", {})
    for label, prefix, block in rows:
        final = block.get("final", {})
        cells = []
        for key, _ in columns:
            stats = final.get(prefix + key, {})
            cells.append(mean_std_text(stats.get("mean"), stats.get("std"), stats.get("n", 0),
                                       not_finite=stats.get("not_finite", 0)))
        for key in returns:
            ours = prefix + key
            gaps = [metrics[ours][-1] - marl_seeds[seed][key][-1] for seed, metrics in block["seeds"].items()
                    if seed in marl_seeds and metrics.get(ours) and metrics[ours][-1] is not None
                    and marl_seeds[seed].get(key) and marl_seeds[seed][key][-1] is not None]
            cells.append("n/a" if not gaps or label == "marl" else mean_std_text(np.mean(gaps), np.std(gaps), len(gaps)))
        lines.append(f"{label:<{label_width}} " + " ".join(f"{cell:>{width}}" for cell, width in zip(cells, widths)))
    if any(prefix for _, prefix, _ in rows):
        lines.append("(<method> interaction: the learner's policy for its LEARNED reward met by the expert acting on "
                     "its TRUE reward; the other rows: both players on the method's rewards)")
    return "\n".join(lines)


def save_results(results: dict, path: Path) -> None:
    """Write ``results`` to ``path`` atomically (temp file in the same directory + os.replace)."""
    text = json.dumps(results, indent=1, allow_nan=False)
    atomic_write_bytes(path, text.encode())


def _is_finite(value) -> bool:
    """A finite float (an integer literal too large for a float, e.g. 1 followed by 400 zeros, is not)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_metric_lists(where: str, metrics) -> None:
    """``metrics``: {name: [number or null, ...]} with at least one entry. NaN / Infinity literals (which
    Python's ``json`` reads and writes, but the schema stores as null) are refused: they would be averaged
    into ``final`` as numbers and make the next atomic save of a resumed run fail."""
    if not isinstance(metrics, dict):
        raise ResultsFileError(f"{where}: expected an object of metric lists")
    for key, values in metrics.items():
        if not isinstance(values, list) or not all(v is None or (isinstance(v, (int, float))
                                                                 and not isinstance(v, bool)) for v in values):
            raise ResultsFileError(f"{where}.{key}: expected a list of numbers")
        if not values:  # summarize() reads the last value; an empty list would silently drop the seed
            raise ResultsFileError(f"{where}.{key}: expected a non-empty list of numbers, got []")
        bad = next((index for index, v in enumerate(values) if v is not None and not _is_finite(v)), None)
        if bad is not None:
            raise ResultsFileError(f"{where}.{key}[{bad}]: {values[bad]!r} is not allowed (non-finite values are "
                                   "stored as null)")


def load_results(path: Path) -> dict:
    """Read and validate a results file; ResultsFileError with a one-line reason if it is unusable."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ResultsFileError(f"{path}: cannot be read ({error.strerror or error})") from None
    try:
        results = json.loads(text)
    except json.JSONDecodeError as error:
        raise ResultsFileError(f"{path}: corrupted (not valid JSON at line {error.lineno}, column {error.colno}); "
                               "delete it or choose another --out") from None
    if not isinstance(results, dict):
        raise ResultsFileError(f"{path}: corrupted (expected a JSON object at the top level)")
    if results.get("schema_version") != SCHEMA_VERSION:
        raise ResultsFileError(f"{path}: schema_version {results.get('schema_version')!r} is not supported "
                               f"(expected {SCHEMA_VERSION})")
    for key, kind in (("experiment", str), ("config", dict), ("versions", dict), ("methods", dict)):
        if not isinstance(results.get(key), kind):
            raise ResultsFileError(f"{path}: corrupted (field {key!r} missing or not a {kind.__name__})")
    config = results["config"]
    for key, kind, name in (("options", dict, "an object"), ("seeds", int, "an integer"),
                            ("iterations", int, "an integer"), ("methods", list, "a list")):
        if key in config and not (isinstance(config[key], kind) and not isinstance(config[key], bool)):
            raise ResultsFileError(f"{path}: corrupted (config.{key} is not {name})")
    for method, block in results["methods"].items():
        if method not in METHODS or not isinstance(block, dict) or not isinstance(block.get("seeds"), dict):
            raise ResultsFileError(f"{path}: corrupted (methods.{method} is not a valid method block)")
        for seed, metrics in block["seeds"].items():
            if not (seed.isascii() and seed.isdigit()):  # "²".isdigit() is True, but int("²") fails
                raise ResultsFileError(f"{path}: corrupted (methods.{method}.seeds has a non-integer key {seed!r})")
            _check_metric_lists(f"{path}: methods.{method}.seeds.{seed}", metrics)
        # ``final`` is derived data: recomputed from the per-seed series, never trusted from the file
        block["final"] = summarize(block["seeds"])
    return results
