"""The read side of a job's ledger, for every service that shows money.

Accounting keeps, per job, a ledger document with the totals of closed leases
and the amounts of open ones (``pending``), and one document per lease with
what it has settled so far. The live view adds the open leases' settled usage
to the closed totals. Amounts are picodollars.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from palette.common.keys import from_mongo_field
from palette.common.lease_view import LEASES

TOTAL_FIELDS = (
    "cost",
    "calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
)
TOKEN_TOTALS = TOTAL_FIELDS[1:]
"""The ledger's job-wide totals (``calls`` and the token counts)."""


@dataclass
class Totals:
    """Cost and usage of one model or one step."""

    cost: int = 0
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    model_id: str | None = None

    def add(self, entry: dict[str, Any]) -> None:
        """Add a stored usage entry."""
        for name in TOTAL_FIELDS:
            setattr(self, name, getattr(self, name) + int(entry.get(name, 0)))
        self.model_id = self.model_id or entry.get("model_id")


@dataclass
class LedgerView:
    """A job's money: limit, spent, reserved, available, and where it went."""

    budget: int
    spent: int = 0
    reserved: int = 0
    available: int = 0
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    by_model: dict[str, Totals] = field(default_factory=dict)
    by_step: dict[str, Totals] = field(default_factory=dict)
    exceeded: bool = False
    open_leases: int = 0
    throttled_calls: int = 0
    """Model-call attempts refused for the provider's quota (not billed)."""
    retried_calls: int = 0
    """Model-call attempts made again after a retryable failure."""
    quota_wait_ms: int = 0
    """Milliseconds model calls waited for their model's quota (summed over calls)."""

    @classmethod
    def empty(cls, budget: int) -> LedgerView:
        """The view of a job that has no ledger yet."""
        return cls(budget=budget, available=budget)


def _merge(into: dict[str, Totals], stored: dict[str, Any], key_is_model: bool) -> None:
    for raw_key, entry in (stored or {}).items():
        key = from_mongo_field(raw_key)
        into.setdefault(key, Totals()).add(entry)
        if key_is_model:
            into[key].model_id = key


def _usage_by_model(usage: dict[str, Any]) -> dict[str, Any]:
    by_model: dict[str, Any] = {}
    for entry in usage.values():
        model = entry["model_id"]
        target = by_model.setdefault(model, dict.fromkeys(TOTAL_FIELDS, 0))
        for name in TOTAL_FIELDS:
            target[name] += int(entry.get(name, 0))
    return by_model


def build_view(doc: dict[str, Any] | None, budget: int, leases: list[dict[str, Any]]) -> LedgerView:
    """The live view of a ledger document and the lease documents of its pending leases.

    ``budget`` is used when there is no ledger yet (``doc`` None).
    """
    if doc is None:
        return LedgerView.empty(budget)
    view = LedgerView(
        budget=int(doc["budget"]),
        spent=int(doc["spent"]),
        available=int(doc["available"]),
        exceeded=bool(doc.get("exceeded", False)),
        throttled_calls=int(doc.get("throttled_calls", 0)),
        retried_calls=int(doc.get("retried_calls", 0)),
        quota_wait_ms=int(doc.get("quota_wait_ms", 0)),
    )
    for name in TOKEN_TOTALS:
        setattr(view, name, int(doc.get(name, 0)))
    _merge(view.by_model, doc.get("by_model", {}), key_is_model=True)
    _merge(view.by_step, doc.get("by_step", {}), key_is_model=False)
    pending = {k: int(v) for k, v in (doc.get("pending") or {}).items()}
    view.reserved = sum(pending.values())
    # A lease stays pending until its closing reached the ledger's totals.
    for lease in leases:
        if lease.get("_id") not in pending:
            continue
        view.open_leases += 1
        settled = int(lease.get("settled", 0))
        view.spent += settled
        view.reserved -= settled
        retries = lease.get("retries") or {}
        view.throttled_calls += int(retries.get("throttled", 0))
        view.retried_calls += int(retries.get("retried", 0))
        view.quota_wait_ms += int(retries.get("waited_ms", 0))
        usage = lease.get("usage") or {}
        for entry in usage.values():
            for name in TOKEN_TOTALS:
                setattr(view, name, getattr(view, name) + int(entry.get(name, 0)))
        _merge(view.by_step, usage, key_is_model=False)
        _merge(view.by_model, _usage_by_model(usage), key_is_model=True)
    return view


async def _pending_leases(
    db: AsyncDatabase[dict[str, Any]], docs: list[dict[str, Any]]
) -> dict[str, list[dict[str, Any]]]:
    """The lease documents of the ledgers' pending leases, by job id."""
    pending = [lease for doc in docs for lease in (doc.get("pending") or {})]
    leases: dict[str, list[dict[str, Any]]] = {}
    if pending:
        async for lease in db[LEASES].find({"_id": {"$in": pending}}):
            leases.setdefault(str(lease.get("job_id")), []).append(lease)
    return leases


async def read_ledgers(
    db: AsyncDatabase[dict[str, Any]], budgets: dict[str, int]
) -> dict[str, LedgerView]:
    """The live ledgers of several jobs (job id -> budget) in two queries, whatever their number."""
    if not budgets:
        return {}
    cursor = db["ledgers"].find({"_id": {"$in": list(budgets)}})
    docs = {str(doc["_id"]): doc async for doc in cursor}
    leases = await _pending_leases(db, list(docs.values()))
    return {
        job_id: build_view(docs.get(job_id), budget, leases.get(job_id, []))
        for job_id, budget in budgets.items()
    }


async def read_ledger(db: AsyncDatabase[dict[str, Any]], job_id: str, budget: int) -> LedgerView:
    """The live ledger of a job (``budget`` is used when there is no ledger yet)."""
    doc = await db["ledgers"].find_one({"_id": job_id})
    if doc is None:
        return LedgerView.empty(budget)
    leases = await _pending_leases(db, [doc])
    return build_view(doc, budget, leases.get(job_id, []))
