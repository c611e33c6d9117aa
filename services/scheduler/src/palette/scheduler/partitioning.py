"""Partitioning and lease sizing, with no I/O."""

from __future__ import annotations

from palette.common.pricing import PricingTable
from palette.common.templates import TemplateSpec
from palette.common.tokens import MESSAGE_OVERHEAD_TOKENS

SEED_ALLOWANCE_BYTES = 256
BYTES_PER_OUTPUT_TOKEN = 4


def partition_ranges(num_records: int, size: int) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of at most ``size`` records covering ``num_records``."""
    if num_records < 0 or size < 1:
        raise ValueError("num_records must be >= 0 and size >= 1")
    return [(start, min(start + size, num_records)) for start in range(0, num_records, size)]


def record_estimate(template: TemplateSpec, pricing: PricingTable) -> int:
    """A first estimate of one record's worst-case cost, in picodollars.

    The generator knows each call's exact worst case only once the prompt is
    rendered; it reports a larger figure (``needed``) when a lease falls
    short, and the next lease is sized from that.
    """
    total = 0
    earlier_output_bytes = 0
    for step in template.steps:
        price = pricing.price(step.model)
        input_bound = (
            len(step.prompt.encode())
            + len((step.system or "").encode())
            + 2 * MESSAGE_OVERHEAD_TOKENS
            + SEED_ALLOWANCE_BYTES
            + earlier_output_bytes
        )
        total += price.cost(input_bound, step.max_tokens)
        earlier_output_bytes += step.max_tokens * BYTES_PER_OUTPUT_TOKEN
    return total


def lease_request(records: int, per_record: int, needed: int) -> tuple[int, int]:
    """``(amount, minimum)`` of a lease for ``records`` records.

    The minimum is one record's worst case, so a granted lease always makes
    progress; the amount covers the whole range.
    """
    unit = max(per_record, needed, 1)
    return unit * max(records, 1), unit
