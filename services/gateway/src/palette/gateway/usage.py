"""A user's spend by day, model, kind or template, from accounting's records; no I/O.

Jobs' spend comes from their leases (accounting's ``leases``: each lease's
settled usage per step, with its model), counted on the UTC day the lease was
granted; what a lease settled beyond its usage detail (calls charged at their
worst case without an invocation log) has no model. Previews' spend comes from
accounting's ``previews``: a settled preview's usage per model, counted on the
day it was reserved; a reservation still open is reported apart, as reserved.
A deleted job's ledger and leases are deleted with it, and so is its spend here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from palette.common.ledger_view import Totals
from palette.common.money import usd_string
from palette.gateway.schemas import UsageGroupBy, UsageKind, UsageRow, UsageView

MAX_DAYS = 366
"""The longest range ``GET /usage`` answers, in days."""

Doc = dict[str, Any]


@dataclass(frozen=True, slots=True)
class UsageRecords:
    """What the usage of an owner is made of, as read from the database."""

    job_templates: dict[str, str | None]
    leases: list[Doc]
    previews: list[Doc]


@dataclass(frozen=True, slots=True)
class Spend:
    """One amount spent: by a job or a preview, on a day, through a model (None: unknown)."""

    kind: UsageKind
    item: str
    day: date
    template_id: str | None
    model_id: str | None
    cost: int
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0


def utc_day(at: datetime) -> date:
    """The UTC day of an instant (a naive one is UTC, as the database stores it)."""
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).date()


def _usage(
    kind: UsageKind, item: str, day: date, template_id: str | None, entries: Iterable[Doc]
) -> Iterator[Spend]:
    for entry in entries:
        yield Spend(
            kind,
            item,
            day,
            template_id,
            entry.get("model_id"),
            int(entry.get("cost", 0)),
            int(entry.get("calls", 0)),
            int(entry.get("input_tokens", 0)),
            int(entry.get("output_tokens", 0)),
            int(entry.get("cache_read_tokens", 0)),
            int(entry.get("cache_write_tokens", 0)),
        )


def spends(records: UsageRecords) -> Iterator[Spend]:
    """Every amount settled in ``records``."""
    for lease in records.leases:
        job_id = str(lease["job_id"])
        template_id = records.job_templates.get(job_id)
        day = utc_day(lease["created_at"])
        entries = list((lease.get("usage") or {}).values())
        yield from _usage(UsageKind.JOB, job_id, day, template_id, entries)
        rest = int(lease.get("settled", 0)) - sum(int(e.get("cost", 0)) for e in entries)
        if rest > 0:
            yield Spend(UsageKind.JOB, job_id, day, template_id, None, rest)
    for doc in records.previews:
        if doc.get("state") != "settled":
            continue
        preview_id, template_id = str(doc["_id"]), doc.get("template_id")
        day = date.fromisoformat(doc["day"])
        yield from _usage(UsageKind.PREVIEW, preview_id, day, template_id, doc.get("usage") or [])
        if int(doc.get("unreconciled") or 0):
            cost = int(doc["unreconciled"])
            yield Spend(UsageKind.PREVIEW, preview_id, day, template_id, None, cost)


def preview_reserved(records: UsageRecords) -> int:
    """What previews still running hold reserved."""
    return sum(int(d.get("amount", 0)) for d in records.previews if d.get("state") == "reserved")


def _key(spend: Spend, group_by: UsageGroupBy) -> str | None:
    if group_by is UsageGroupBy.DAY:
        return spend.day.isoformat()
    if group_by is UsageGroupBy.MODEL:
        return spend.model_id
    if group_by is UsageGroupBy.KIND:
        return spend.kind.value
    return spend.template_id


def rows(all_spends: Iterable[Spend], group_by: UsageGroupBy) -> list[UsageRow]:
    """Spend summed per group and kind; groups in order (null last), jobs before previews."""
    table: dict[tuple[str | None, UsageKind], tuple[Totals, set[str]]] = {}
    for spend in all_spends:
        totals, items = table.setdefault((_key(spend, group_by), spend.kind), (Totals(), set()))
        totals.add(
            {
                "cost": spend.cost,
                "calls": spend.calls,
                "input_tokens": spend.input_tokens,
                "output_tokens": spend.output_tokens,
                "cache_read_tokens": spend.cache_read_tokens,
                "cache_write_tokens": spend.cache_write_tokens,
            }
        )
        items.add(spend.item)
    kinds = list(UsageKind)
    ordered = sorted(table, key=lambda k: (k[0] is None, k[0] or "", kinds.index(k[1])))
    return [
        UsageRow(
            key=key,
            kind=kind,
            cost_usd=usd_string(table[key, kind][0].cost),
            calls=table[key, kind][0].calls,
            input_tokens=table[key, kind][0].input_tokens,
            output_tokens=table[key, kind][0].output_tokens,
            cache_read_tokens=table[key, kind][0].cache_read_tokens,
            cache_write_tokens=table[key, kind][0].cache_write_tokens,
            items=len(table[key, kind][1]),
        )
        for key, kind in ordered
    ]


def usage_view(first: date, last: date, group_by: UsageGroupBy, records: UsageRecords) -> UsageView:
    """The answer of ``GET /usage`` for the records read between ``first`` and ``last``."""
    found = list(spends(records))
    by_kind = {kind: sum(s.cost for s in found if s.kind is kind) for kind in UsageKind}
    return UsageView(
        first_day=first,
        last_day=last,
        group_by=group_by,
        total_usd=usd_string(sum(by_kind.values())),
        job_usd=usd_string(by_kind[UsageKind.JOB]),
        preview_usd=usd_string(by_kind[UsageKind.PREVIEW]),
        preview_reserved_usd=usd_string(preview_reserved(records)),
        rows=rows(found, group_by),
    )
