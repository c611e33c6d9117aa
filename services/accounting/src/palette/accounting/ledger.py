"""Ledger rules with no I/O: exact costs, lease grants and denials, lease closing, reconciliation.

All amounts are integer picodollars.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from palette.accounting.invocations import LoggedCall, unique
from palette.common.keys import mongo_field
from palette.common.messages import LeaseClosed, RetryCounts, StepUsage
from palette.common.pricing import PricingTable
from palette.common.service_tiers import ServiceTier, rated_table

UsageMap = dict[str, dict[str, Any]]

TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
"""A usage entry's token counts (``StepUsage``'s), each summed in the ledger."""
USAGE_FIELDS = ("calls", *TOKEN_FIELDS, "cost")
"""A usage entry's counts: calls, tokens and exact cost."""
CACHE_FIELDS = ("cache_read_tokens", "cache_write_tokens")
"""Kept in a usage entry only when not zero (most steps cache nothing)."""


def _compact(entry: dict[str, Any]) -> dict[str, Any]:
    """The entry without cache counts of zero."""
    return {k: v for k, v in entry.items() if v or k not in CACHE_FIELDS}


def step_cost(u: StepUsage, pricing: PricingTable) -> int:
    """Exact cost of one usage row at the price of the tier it was served at (or batch).

    Cache reads and writes are at their prices: the default tier's (the only
    one with cache prices); at another rate they would be at its input price.
    """
    return rated_table(pricing, u.service_tier).cost(
        u.model_id, u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens
    )


def usage_cost(usage: Iterable[StepUsage], pricing: PricingTable) -> int:
    """Exact cost of a usage list."""
    return sum(step_cost(u, pricing) for u in usage)


def grant(available: int, amount: int, minimum: int) -> int | None:
    """The lease to grant: as much as asked within what is available, else None."""
    if minimum > amount or available < minimum:
        return None
    return min(amount, available)


@dataclass(frozen=True, slots=True)
class Reservation:
    """Outcome of a reservation request: the lease granted (None: denied), what is left."""

    granted: int | None
    available: int
    reserved: int
    """What the job's open leases hold, this one included when granted."""


def budget_exceeded(reservation: Reservation) -> bool:
    """Whether a reservation ends the job's spending: denied, and no lease is open.

    With nothing out on lease no money can come back, so no later request can
    be granted either. A denial while leases are open only waits for them.
    """
    return reservation.granted is None and reservation.reserved == 0


def usage_map(
    usage: Iterable[StepUsage], pricing: PricingTable, key: Callable[[StepUsage], str] | None = None
) -> UsageMap:
    """Usage keyed by step id (or by ``key``), with the cost of each entry."""
    result: UsageMap = {}
    for u in usage:
        entry = result.setdefault(
            key(u) if key else u.step_id,
            {"model_id": u.model_id, **dict.fromkeys(USAGE_FIELDS, 0)},
        )
        entry["calls"] += u.calls
        for field in TOKEN_FIELDS:
            entry[field] += getattr(u, field)
        entry["cost"] += step_cost(u, pricing)
    return {name: _compact(entry) for name, entry in result.items()}


def merge(seen: Mapping[str, Mapping[str, Any]], more: UsageMap) -> UsageMap:
    """Usage maps added step by step."""
    result: UsageMap = {k: dict(v) for k, v in seen.items()}
    for step, entry in more.items():
        if step not in result:
            result[step] = dict(entry)
            continue
        for field in USAGE_FIELDS:
            result[step][field] = int(result[step].get(field, 0)) + int(entry.get(field, 0))
        result[step] = _compact(result[step])
    return result


def difference(total: UsageMap, seen: Mapping[str, Mapping[str, Any]]) -> UsageMap:
    """What ``total`` has beyond ``seen``, step by step (never negative)."""
    result: UsageMap = {}
    for step, entry in total.items():
        before = seen.get(step, {})
        delta = {
            field: max(0, int(entry.get(field, 0)) - int(before.get(field, 0)))
            for field in USAGE_FIELDS
        }
        if any(delta.values()):
            result[step] = _compact({"model_id": entry["model_id"], **delta})
    return result


def aggregate_increments(usage: UsageMap) -> dict[str, int]:
    """``$inc`` fields for the ledger's totals, per model and per step."""
    inc: dict[str, int] = {}
    for step, entry in usage.items():
        model = mongo_field(entry["model_id"])
        for field in USAGE_FIELDS:
            value = int(entry.get(field, 0))
            if not value:
                continue
            if field != "cost":
                inc[field] = inc.get(field, 0) + value
            for scope in (f"by_model.{model}", f"by_step.{mongo_field(step)}"):
                key = f"{scope}.{field}"
                inc[key] = inc.get(key, 0) + value
    return inc


RETRY_FIELDS = {
    "throttled": "throttled_calls",
    "retried": "retried_calls",
    "waited_ms": "quota_wait_ms",
}
"""A lease's ``retries.<name>`` counter -> the ledger's total of it."""


def retry_fields(retries: RetryCounts) -> dict[str, int]:
    """A lease's ``retries.*`` fields for counts (the non-zero ones)."""
    counts = {
        "throttled": retries.throttled,
        "retried": retries.retried,
        "waited_ms": retries.waited_ms,
    }
    return {f"retries.{name}": n for name, n in counts.items() if n}


def retry_totals(lease_retries: dict[str, Any]) -> dict[str, int]:
    """``$inc`` fields for the ledger's retry totals from a closed lease's counters."""
    totals = {total: int(lease_retries.get(name, 0)) for name, total in RETRY_FIELDS.items()}
    return {total: n for total, n in totals.items() if n}


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


def lease_closed(lease: Mapping[str, Any]) -> LeaseClosed:
    """The announcement of a closed lease: what it spent and what returned to the job.

    Its message id is the lease's, so the scheduler applies it once however
    often it is published (on every delivery of the lease's end, and by the
    reconciler).
    """
    return LeaseClosed(
        message_id=f"closed-{lease['_id']}",
        job_id=lease["job_id"],
        partition=int(lease["partition"]),
        lease_id=lease["_id"],
        spent=int(lease["settled"]),
        returned=int(lease["amount"]) - int(lease["settled"]),
    )


# ------------------------------------------------- leases held for reconciliation


def held_for_log(*, unknown_calls: int, lost_holder: bool, log_configured: bool) -> bool:
    """Whether an ended attempt's lease waits for the invocation log instead of closing now.

    Only an attempt that left calls of unknown outcome, or lost its holder, has
    a cost that its report does not tell; without a log it closes at once, at
    the worst case (``unlogged_charge``).
    """
    return log_configured and (unknown_calls > 0 or lost_holder)


def held_amount(amount: int, known: int, unknown_worst: int) -> int:
    """What a lease keeps while its unknown calls wait for the log: known cost plus their worst.

    Never more than the lease (the generator's guard kept ``spent + held``
    within it), so the rest can return to the job at once.
    """
    if min(amount, known, unknown_worst) < 0:
        raise ValueError("amounts must not be negative")
    return min(amount, known + unknown_worst)


def unlogged_charge(amount: int, known: int, unknown_worst: int, *, whole: bool) -> int:
    """What is charged without usage detail when there is no invocation log.

    Unknown calls count at their worst case; a lost holder's lease at its whole
    amount (nobody knows what the holder spent). Never beyond the lease.
    """
    room = max(amount - known, 0)
    return room if whole else min(unknown_worst, room)


@dataclass(frozen=True, slots=True)
class Settlement:
    """A held lease's final usage and cost, from the invocation log."""

    usage: UsageMap
    settled: int
    logged_calls: int


def logged_usage(calls: Iterable[LoggedCall], pricing: PricingTable) -> UsageMap:
    """Usage of logged calls keyed by step, priced (each request once)."""
    return usage_map(
        (
            StepUsage(
                step_id=c.step,
                model_id=c.model_id,
                calls=1,
                input_tokens=c.input_tokens,
                output_tokens=c.output_tokens,
                cache_read_tokens=c.cache_read_tokens,
                cache_write_tokens=c.cache_write_tokens,
                service_tier=ServiceTier(c.service_tier),
            )
            for c in unique(calls)
        ),
        pricing,
    )


def settle_unknown(
    usage: Mapping[str, Mapping[str, Any]],
    settled: int,
    unknown_ids: Collection[str],
    lease_calls: Iterable[LoggedCall],
    pricing: PricingTable,
) -> Settlement:
    """Known usage plus the logged cost of the unknown calls (absent from the log: not billed)."""
    wanted = set(unknown_ids)
    found = logged_usage((c for c in lease_calls if c.call_id in wanted), pricing)
    cost = sum(int(e["cost"]) for e in found.values())
    calls = sum(int(e["calls"]) for e in found.values())
    return Settlement(merge(usage, found), settled + cost, calls)


def settle_lost(lease_calls: Iterable[LoggedCall], pricing: PricingTable) -> Settlement:
    """A lost holder's lease: every logged call of the lease, nothing else."""
    found = logged_usage(lease_calls, pricing)
    cost = sum(int(e["cost"]) for e in found.values())
    calls = sum(int(e["calls"]) for e in found.values())
    return Settlement(found, cost, calls)


def with_batches(settlement: Settlement, batches: UsageMap) -> Settlement:
    """A held lease's settlement plus what its batch jobs billed (never in the invocation log)."""
    cost = sum(int(e["cost"]) for e in batches.values())
    return Settlement(
        merge(settlement.usage, batches), settlement.settled + cost, settlement.logged_calls
    )
