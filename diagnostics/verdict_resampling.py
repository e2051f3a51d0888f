"""How much does a Table 1 verdict depend on which seeds were drawn?

Table 1 calls a method "within noise of MARL" when |mean(method) − mean(MARL)| over its seeds is at most the
larger of the two stds (ddof 0), and "within MARL's own std" when it is at most MARL's std. Both verdicts are
computed from one draw of 10 seeds. This diagnostic takes a larger pool of seeds, each run with both the method
and MARL (one or more ``gsiirl run`` results files of the same experiment and options, with no seed in two
files), and asks:

* over the whole pool: the paired gap per seed (method − MARL on the same seed), its mean, standard error and
  median, and both verdicts;
* over every subset of ``--table-seeds`` seeds of the pool (all of them when there are at most ``--draws``,
  otherwise ``--draws`` random subsets): how often each verdict says "yes".

The values are each seed's last recorded ``learner_return`` and ``expert_return``, as in Table 1. A seed whose
last value is not finite for either method is left out of the pool, and the output says so. Written
atomically as JSON.

    python diagnostics/verdict_resampling.py --results runs/mpe/results.json --out runs/mpe_verdicts.json
"""

from __future__ import annotations

import argparse
import json
import math
from itertools import combinations
from pathlib import Path

import numpy as np

COLUMNS = ("learner_return", "expert_return")
MAX_DRAWS = 1_000_000  # subsets held at once: [draws, table_seeds] indices and their values


def paired_values(results: dict, method: str, where: str = "results") -> tuple[dict[int, np.ndarray], list[int]]:
    """{seed: [method learner, method expert, MARL learner, MARL expert]} over the seeds that both units ran
    with finite last values, and the seeds left out for a non-finite value."""
    methods = results["methods"]
    for name in (method, "marl"):
        if name not in methods:
            raise ValueError(f"{where}: expected a {name!r} unit, found {sorted(methods)}")
    shared = sorted(set(methods[method]["seeds"]) & set(methods["marl"]["seeds"]), key=int)
    values, not_finite = {}, []
    for seed in shared:
        row = []
        for name in (method, "marl"):
            metrics = methods[name]["seeds"][seed]
            for column in COLUMNS:
                if not metrics.get(column):
                    raise ValueError(f"{where}: methods.{name}.seeds.{seed} has no {column!r}")
                row.append(metrics[column][-1])
        if any(value is None or not math.isfinite(value) for value in row):
            not_finite.append(int(seed))
        else:
            values[int(seed)] = np.asarray(row, float)
    return values, not_finite


def pool(result_files: list[tuple[str, dict]], method: str) -> tuple[np.ndarray, np.ndarray, list[int], list[int]]:
    """Paired values of several results files of one experiment and options.

    Returns (method [N, 2], marl [N, 2], seeds [N], seeds left out as not finite); column 0 is the learner's
    return and column 1 the expert's."""
    if not result_files:
        raise ValueError("results: expected at least one results file")
    def configuration(results: dict) -> dict:
        return {"experiment": results["experiment"], "options": results["config"].get("options")}

    first_name, first = result_files[0][0], configuration(result_files[0][1])
    owner: dict[int, str] = {}
    rows, left_out = {}, []
    for name, results in result_files:
        for key, mine in configuration(results).items():
            theirs = first[key]
            if mine != theirs:
                raise ValueError(f"results: {name} has another {key} than {first_name} ({mine!r} vs {theirs!r}); "
                                 "only runs of one configuration can be pooled")
        values, not_finite = paired_values(results, method, name)
        for seed in list(values) + not_finite:
            if seed in owner:
                raise ValueError(f"results: seed {seed} is in both {owner[seed]} and {name}; a seed counts once")
            owner[seed] = name
        rows.update(values)
        left_out += not_finite
    seeds = sorted(rows)
    if len(seeds) < 2:
        raise ValueError(f"results: expected at least 2 seeds with finite values for {method!r} and 'marl', "
                         f"got {len(seeds)}")
    table = np.stack([rows[seed] for seed in seeds])
    return table[:, :2], table[:, 2:], seeds, sorted(left_out)


def verdicts(method_values: np.ndarray, marl_values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Table 1's verdicts (the rule of ``gsiirl.cli.reproduce._verdict``) for draws of seeds:
    method_values, marl_values [..., K, C] (K seeds, C columns).

    Returns (gap [..., C] = mean(method) − mean(MARL), within the larger std [..., C], within MARL's std
    [..., C]); stds with ddof 0, as in Table 1."""
    gap = method_values.mean(-2) - marl_values.mean(-2)
    method_std, marl_std = method_values.std(-2), marl_values.std(-2)
    return gap, np.abs(gap) <= np.maximum(method_std, marl_std), np.abs(gap) <= marl_std


def seed_subsets(pool_size: int, table_seeds: int, draws: int, seed: int) -> tuple[np.ndarray, bool]:
    """Index subsets [D, table_seeds] of range(pool_size): every subset if there are at most ``draws``
    (exhaustive = True), else ``draws`` subsets drawn uniformly at random (each without repeated seeds)."""
    total = math.comb(pool_size, table_seeds)
    if total <= draws:
        return np.array(list(combinations(range(pool_size), table_seeds)), dtype=np.int64), True
    rng, chunk, parts = np.random.default_rng(seed), max(1, 4_000_000 // pool_size), []
    for start in range(0, draws, chunk):  # random keys [chunk, N] at a time: bounded memory for large pools
        keys = rng.random((min(chunk, draws - start), pool_size))
        parts.append(np.sort(np.argsort(keys, axis=1)[:, :table_seeds], axis=1))
    return np.concatenate(parts), False


def verdict_study(method_values: np.ndarray, marl_values: np.ndarray, table_seeds: int = 10,
                  draws: int = 100_000, seed: int = 0) -> dict:
    """The pooled paired gaps and verdicts, and how often a table of ``table_seeds`` seeds says "yes".

    method_values, marl_values: [N, C] per-seed values (row i of both is seed i)."""
    method_values, marl_values = np.asarray(method_values, float), np.asarray(marl_values, float)
    if method_values.shape != marl_values.shape or method_values.ndim != 2:
        raise ValueError(f"values: expected two arrays of one shape [N, C], got {method_values.shape} and "
                         f"{marl_values.shape}")
    if not (np.isfinite(method_values).all() and np.isfinite(marl_values).all()):
        raise ValueError("values: expected finite numbers (leave out the seeds whose last value is not finite)")
    pool_size = method_values.shape[0]
    if isinstance(table_seeds, bool) or not isinstance(table_seeds, int) or not 2 <= table_seeds <= pool_size:
        raise ValueError(f"table_seeds: expected an integer in [2, {pool_size}] (the pool's seeds), got {table_seeds!r}")
    if isinstance(draws, bool) or not isinstance(draws, int) or not 1 <= draws <= MAX_DRAWS:
        raise ValueError(f"draws: expected an integer in [1, {MAX_DRAWS:,}], got {draws!r}")
    paired = method_values - marl_values
    gap, larger, own = verdicts(method_values, marl_values)
    subsets, exhaustive = seed_subsets(pool_size, table_seeds, draws, seed)
    sub_gap, sub_larger, sub_own = verdicts(method_values[subsets], marl_values[subsets])
    columns = {}
    for c in range(method_values.shape[1]):
        columns[c] = {
            "pooled_gap": float(gap[c]),
            "pooled_gap_standard_error": float(paired[:, c].std(ddof=1) / math.sqrt(pool_size)),
            "median_paired_gap": float(np.median(paired[:, c])),
            "seeds_below_marl": int((paired[:, c] < 0).sum()),
            "pooled_method_std": float(method_values[:, c].std()),
            "pooled_marl_std": float(marl_values[:, c].std()),
            "pooled_within_larger_std": bool(larger[c]),
            "pooled_within_marl_std": bool(own[c]),
            "p_within_larger_std": float(sub_larger[:, c].mean()),
            "p_within_marl_std": float(sub_own[:, c].mean()),
            "median_table_gap": float(np.median(sub_gap[:, c])),
        }
    return {"pool_seeds": pool_size, "table_seeds": table_seeds, "subsets": int(len(subsets)),
            "exhaustive": exhaustive, "columns": columns,
            "p_all_columns_within_larger_std": float(sub_larger.all(1).mean()),
            "p_all_columns_within_marl_std": float(sub_own.all(1).mean())}


def study_files(paths: list[Path], table_seeds: int = 10, draws: int = 100_000, seed: int = 0) -> dict:
    """:func:`verdict_study` of every learning method in the results files (pooled over the files)."""
    from gsiirl.experiments.results_file import load_results

    files = [(str(path), load_results(Path(path))) for path in paths]
    methods = [m for m in ("gsiirl", "ma-irl") if all(m in results["methods"] for _, results in files)]
    if not methods:
        raise ValueError("results: expected a 'gsiirl' or 'ma-irl' unit beside 'marl' in every file")
    out = {"experiment": files[0][1]["experiment"], "files": [name for name, _ in files], "methods": {}}
    for method in methods:
        method_values, marl_values, seeds, left_out = pool(files, method)
        study = verdict_study(method_values, marl_values, table_seeds, draws, seed)
        study["columns"] = {COLUMNS[c]: value for c, value in study["columns"].items()}
        out["methods"][method] = {"seeds": seeds, "not_finite_seeds": left_out, **study}
    return out


def summary(study: dict) -> str:
    lines = [f"{study['experiment']}: {', '.join(study['files'])}"]
    for method, entry in study["methods"].items():
        how = "every subset" if entry["exhaustive"] else f"{entry['subsets']:,} random subsets"
        lines.append(f"{method}: {entry['pool_seeds']} paired seeds; tables of {entry['table_seeds']} seeds, {how}"
                     + (f"; left out (not finite): {entry['not_finite_seeds']}" if entry["not_finite_seeds"] else ""))
        for column, c in entry["columns"].items():
            lines.append(
                f"  {column:<15} pooled gap {c['pooled_gap']:+.3f} (SE {c['pooled_gap_standard_error']:.3f}), median "
                f"{c['median_paired_gap']:+.3f}, {c['seeds_below_marl']} below MARL; pooled verdict "
                f"{'yes' if c['pooled_within_larger_std'] else 'NO'} / {'yes' if c['pooled_within_marl_std'] else 'NO'}"
                f" (larger std / MARL's); P(yes) in a table: {c['p_within_larger_std']:.3f} / {c['p_within_marl_std']:.3f}")
        lines.append(f"  both columns: P(yes) {entry['p_all_columns_within_larger_std']:.3f} / "
                     f"{entry['p_all_columns_within_marl_std']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    from gsiirl.io.atomic import atomic_write_bytes, check_output_directory

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, nargs="+", required=True, help="results files of one configuration")
    parser.add_argument("--table-seeds", type=int, default=10, help="seeds per table (Table 1: 10)")
    parser.add_argument("--draws", type=int, default=100_000, help="subsets at most (all if there are fewer)")
    parser.add_argument("--seed", type=int, default=0, help="random subsets' seed")
    parser.add_argument("--out", type=Path, required=True, help="JSON file to write")
    args = parser.parse_args(argv)
    try:
        check_output_directory(args.out.parent, "out")
        study = study_files(args.results, args.table_seeds, args.draws, args.seed)
    except ValueError as error:
        parser.exit(2, f"verdict_resampling: error: {error}\n")
    atomic_write_bytes(args.out, json.dumps(study, indent=1).encode())
    print(summary(study))
    return study


if __name__ == "__main__":
    main()
