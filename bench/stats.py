"""Summary statistics of the benchmark's samples (pure: no I/O)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def median(values: Sequence[float]) -> float:
    """The median of several runs.

    Raises:
        ValueError: no values.
    """
    if not values:
        raise ValueError("the median of no values is undefined")
    return float(statistics.median(values))


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile: the smallest value with ``q`` % of values at or below it.

    Nearest rank never interpolates, so a p99 of 20 samples is their maximum:
    with few samples it is the conservative choice.

    Raises:
        ValueError: no values, or ``q`` outside (0, 100].
    """
    if not values:
        raise ValueError("the percentile of no values is undefined")
    if not 0 < q <= 100:
        raise ValueError(f"percentile {q} is outside (0, 100]")
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered))
    return float(ordered[rank - 1])


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator``; ValueError when the denominator is not positive."""
    if denominator <= 0:
        raise ValueError(f"cannot divide by {denominator}")
    return numerator / denominator


def mean_in_flight(intervals: Sequence[tuple[float, float]], start: float, end: float) -> float:
    """How many intervals were open on average over ``[start, end)``.

    Each interval is ``(opened, closed)``; the part outside the window is not counted.

    Raises:
        ValueError: an empty or reversed window.
    """
    if end <= start:
        raise ValueError("the window must have a positive length")
    covered = sum(max(0.0, min(b, end) - max(a, start)) for a, b in intervals)
    return covered / (end - start)
