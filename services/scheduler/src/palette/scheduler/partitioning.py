"""Partitioning and lease sizing, with no I/O."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from palette.common.estimates import record_worst_case, seed_bytes
from palette.common.pricing import PricingTable
from palette.common.templates import TemplateSpec


def partition_ranges(num_records: int, size: int, first: int = 0) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of at most ``size`` records covering ``[first, num_records)``."""
    if num_records < 0 or size < 1 or first < 0:
        raise ValueError("num_records and first must be >= 0 and size >= 1")
    return [(start, min(start + size, num_records)) for start in range(first, num_records, size)]


@dataclass(frozen=True, slots=True)
class SeedSummary:
    """What lease sizing needs of a seed file: its records and the largest one's size."""

    count: int
    largest_bytes: int


def summarize_seeds(records: Iterable[dict[str, Any]]) -> SeedSummary:
    """Count records (reading every one, so every one is checked) and size the largest."""
    count = largest = 0
    for record in records:
        count += 1
        largest = max(largest, seed_bytes(record))
    return SeedSummary(count, largest)


def record_estimate(template: TemplateSpec, pricing: PricingTable, largest_seed_bytes: int) -> int:
    """A first estimate of one record's worst-case cost, in picodollars.

    The rule of ``palette.common.estimates`` before rendering, with the job's
    largest seed. The generator knows each call's exact worst case only once
    the prompt is rendered; it reports a larger figure (``needed``) when a
    lease falls short, and the next lease is sized from that.
    """
    prices = {model: pricing.price(model) for model in template.models}
    return record_worst_case(template.steps, prices, largest_seed_bytes)


def lease_request(records: int, per_record: int, needed: int) -> tuple[int, int]:
    """``(amount, minimum)`` of a lease for ``records`` records.

    The minimum is one record's worst case, so a granted lease always makes
    progress; the amount covers the whole range.
    """
    unit = max(per_record, needed, 1)
    return unit * max(records, 1), unit
