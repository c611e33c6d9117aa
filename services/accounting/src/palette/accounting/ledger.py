"""Ledger arithmetic with no I/O: exact costs, lease grants, lease closing.

All amounts are integer picodollars.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from palette.common.keys import mongo_field
from palette.common.messages import StepUsage
from palette.common.pricing import PricingTable

UsageMap = dict[str, dict[str, Any]]


def usage_cost(usage: Iterable[StepUsage], pricing: PricingTable) -> int:
    """Exact cost of a usage list."""
    return sum(pricing.cost(u.model_id, u.input_tokens, u.output_tokens) for u in usage)


def grant(available: int, amount: int, minimum: int) -> int | None:
    """The lease to grant: as much as asked within what is available, else None."""
    if minimum > amount or available < minimum:
        return None
    return min(amount, available)


def usage_map(usage: Iterable[StepUsage], pricing: PricingTable) -> UsageMap:
    """Usage keyed by step id, with the cost of each step."""
    result: UsageMap = {}
    for u in usage:
        entry = result.setdefault(
            u.step_id,
            {"model_id": u.model_id, "calls": 0, "input_tokens": 0, "output_tokens": 0, "cost": 0},
        )
        entry["calls"] += u.calls
        entry["input_tokens"] += u.input_tokens
        entry["output_tokens"] += u.output_tokens
        entry["cost"] += pricing.cost(u.model_id, u.input_tokens, u.output_tokens)
    return result


def merge(seen: Mapping[str, Mapping[str, Any]], more: UsageMap) -> UsageMap:
    """Usage maps added step by step."""
    result: UsageMap = {k: dict(v) for k, v in seen.items()}
    for step, entry in more.items():
        if step not in result:
            result[step] = dict(entry)
            continue
        for field in ("calls", "input_tokens", "output_tokens", "cost"):
            result[step][field] += entry[field]
    return result


def difference(total: UsageMap, seen: Mapping[str, Mapping[str, Any]]) -> UsageMap:
    """What ``total`` has beyond ``seen``, step by step (never negative)."""
    result: UsageMap = {}
    for step, entry in total.items():
        before = seen.get(step, {})
        delta = {
            field: max(0, entry[field] - int(before.get(field, 0)))
            for field in ("calls", "input_tokens", "output_tokens", "cost")
        }
        if any(delta.values()):
            result[step] = {"model_id": entry["model_id"], **delta}
    return result


def aggregate_increments(usage: UsageMap) -> dict[str, int]:
    """``$inc`` fields for the ledger's totals, per model and per step."""
    inc: dict[str, int] = {}
    for step, entry in usage.items():
        model = mongo_field(entry["model_id"])
        for field in ("calls", "input_tokens", "output_tokens", "cost"):
            value = int(entry[field])
            if not value:
                continue
            if field != "cost":
                inc[field] = inc.get(field, 0) + value
            for scope in (f"by_model.{model}", f"by_step.{mongo_field(step)}"):
                key = f"{scope}.{field}"
                inc[key] = inc.get(key, 0) + value
    return inc


@dataclass(frozen=True, slots=True)
class Closing:
    """How a lease closes: what is newly spent and what returns to the job."""

    extra_spent: int
    reserved_release: int
    returned: int


def close_lease(amount: int, settled: int, total: int) -> Closing:
    """Close a lease of ``amount`` that has ``settled`` so far and cost ``total``.

    ``total`` covers everything the attempt spent under the lease, so the
    lease's whole reservation is released and what it did not spend returns.
    """
    total = max(total, settled)
    return Closing(
        extra_spent=total - settled,
        reserved_release=amount - settled,
        returned=amount - total,
    )
