"""Small timing helpers shared by the benchmarks (wall-clock medians after a warm-up call)."""

from __future__ import annotations

import statistics
import time

import jax


def median_seconds(function, *args, repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``function(*args)`` (results blocked until ready) after ``warmup`` calls."""
    for _ in range(warmup):
        jax.block_until_ready(function(*args))
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(function(*args))
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def print_table(header: list[str], rows: list[list]) -> str:
    """Print and return a Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(f"{c:.4g}" if isinstance(c, float) else str(c) for c in row) + " |")
    text = "\n".join(lines)
    print(text)
    return text
