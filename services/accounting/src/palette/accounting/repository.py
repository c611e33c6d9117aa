"""MongoDB access of accounting: ledgers and leases, without transactions.

Every change is one atomic update of one document that carries its own
idempotency marker, so a redelivered message has no second effect and a
process killed at any point leaves no lock behind (an abandoned multi-document
transaction would block writers of the same documents until the server reaps
it, 60 s by default):

- a grant moves money from ``available`` to ``pending.<lease_id>`` in the
  job's ledger (the marker: a lease is granted once);
- a settlement adds a part's usage to its lease, recording the message id in
  the lease's ``applied`` list (bounded by the parts of one partition);
- a closing marks the lease closed with its final usage, then moves it from
  ``pending`` into the ledger's totals (the marker: ``pending.<lease_id>``).

A lease held for reconciliation (an attempt ended with calls of unknown
outcome, or its holder was lost) is kept by ``lease_holds.py``, with the same
closing.
"""

from __future__ import annotations

import contextlib
from typing import Any

from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError

from palette.accounting import ledger, metrics
from palette.common.job_view import job_budget_picos
from palette.common.keys import mongo_field
from palette.common.messages import RetryCounts, utcnow
from palette.common.metrics import usd

Doc = dict[str, Any]


NO_RETRIES = RetryCounts()


def retries_at_least(retries: RetryCounts) -> Doc:
    """``$max`` of a lease's retry counts with an ended attempt's totals (parts counted them)."""
    fields = ledger.retry_fields(retries)
    return {"$max": fields} if fields else {}


class UnknownJobError(LookupError):
    """A message about a job or lease that does not exist."""


class LedgerRepository:
    """Job ledgers and their leases: grants, settlements, closings (holds: ``LeaseHolds``)."""

    def __init__(self, client: AsyncMongoClient[Doc], database: str) -> None:
        db = client[database]
        self.ledgers = db["ledgers"]
        self.leases = db["leases"]
        self.db = db

    async def create_indexes(self) -> None:
        """Indexes of the ledger's queries (and of readers counting open leases)."""
        await self.leases.create_index([("job_id", 1), ("closed", 1)])
        await self.leases.create_index([("reconcile.state", 1), ("reconcile.due", 1)])

    async def ensure_ledger(self, job_id: str) -> Doc:
        """The job's ledger, created from the job's budget on first use."""
        existing = await self.ledgers.find_one({"_id": job_id})
        if existing is not None:
            return existing
        budget = await job_budget_picos(self.db, job_id)
        if budget is None:
            raise UnknownJobError(f"job {job_id}")
        fresh = {
            "_id": job_id,
            "budget": budget,
            "available": budget,
            "spent": 0,
            "pending": {},
            "calls": 0,
            "input_tokens": 0,
            "output_tokens": 0,
            "by_model": {},
            "by_step": {},
            "exceeded": False,
            "created_at": utcnow(),
        }
        with contextlib.suppress(DuplicateKeyError):
            await self.ledgers.insert_one(fresh)
        found = await self.ledgers.find_one({"_id": job_id})
        assert found is not None
        return found

    async def reserve(
        self, job_id: str, partition: int, lease_id: str, amount: int, minimum: int
    ) -> ledger.Reservation:
        """Grant a lease with one conditional update; a lease id is granted once."""
        current = await self.ensure_ledger(job_id)
        for _ in range(50):
            pending = current.get("pending") or {}
            if lease_id in pending:
                granted: int | None = int(pending[lease_id])
                break
            lease = await self.leases.find_one({"_id": lease_id})
            if lease is not None:  # granted and already closed
                granted = int(lease["amount"])
                break
            granted = ledger.grant(int(current["available"]), amount, minimum)
            if granted is None:
                break
            after = await self.ledgers.find_one_and_update(
                {
                    "_id": job_id,
                    "available": {"$gte": granted},
                    f"pending.{lease_id}": {"$exists": False},
                },
                {"$inc": {"available": -granted}, "$set": {f"pending.{lease_id}": granted}},
                return_document=ReturnDocument.AFTER,
            )
            if after is not None:
                current = after
                metrics.RESERVED.inc(usd(granted))
                break
            refreshed = await self.ledgers.find_one({"_id": job_id})
            assert refreshed is not None
            current = refreshed
        else:
            raise RuntimeError(f"could not reserve for {job_id}: too many concurrent changes")
        if granted is not None:
            await self.leases.update_one(
                {"_id": lease_id},
                {
                    "$setOnInsert": {
                        "job_id": job_id,
                        "partition": partition,
                        "amount": granted,
                        "settled": 0,
                        "usage": {},
                        "applied": [],
                        "closed": False,
                        "created_at": utcnow(),
                    }
                },
                upsert=True,
            )
        reserved = sum(int(v) for v in (current.get("pending") or {}).values())
        return ledger.Reservation(granted, int(current["available"]), reserved)

    async def settle(
        self,
        message_id: str,
        lease_id: str,
        usage: ledger.UsageMap,
        retries: RetryCounts = NO_RETRIES,
    ) -> int | None:
        """Add a part's usage and retry counts to its lease once; None if applied before.

        One conditional update; the lease is read only when it did not apply
        (a repeat, a closed lease, or no such lease: ``UnknownJobError``).
        """
        cost = sum(int(e["cost"]) for e in usage.values())
        inc: dict[str, int] = {"settled": cost} | ledger.retry_fields(retries)
        model_ids: dict[str, str] = {}
        for step, entry in usage.items():
            key = mongo_field(step)
            model_ids[f"usage.{key}.model_id"] = entry["model_id"]
            for name in ledger.USAGE_FIELDS:
                if entry.get(name) or name in ("calls", "cost"):
                    inc[f"usage.{key}.{name}"] = int(entry.get(name, 0))
        result = await self.leases.update_one(
            {
                "_id": lease_id,
                "closed": False,
                "reconcile": {"$exists": False},  # an ended attempt's total includes it
                "applied": {"$ne": message_id},
            },
            {"$push": {"applied": message_id}, "$inc": inc, "$set": model_ids},
        )
        if result.modified_count:
            return cost
        if await self.leases.find_one({"_id": lease_id}, {"_id": 1}) is None:
            raise UnknownJobError(f"lease {lease_id}")
        return None

    async def lease(self, lease_id: str) -> Doc | None:
        """One lease."""
        return await self.leases.find_one({"_id": lease_id})

    async def known_lease(self, lease_id: str) -> Doc:
        """One lease; raises ``UnknownJobError`` if there is none."""
        lease = await self.leases.find_one({"_id": lease_id})
        if lease is None:
            raise UnknownJobError(f"lease {lease_id}")
        return lease

    @staticmethod
    def usage_with(lease: Doc, total: ledger.UsageMap) -> tuple[ledger.UsageMap, int]:
        """The lease's usage with an ended attempt's total, and its cost."""
        seen = dict(lease.get("usage") or {})
        extra = ledger.difference(total, seen)
        cost = int(lease["settled"]) + sum(int(e["cost"]) for e in extra.values())
        return ledger.merge(seen, extra), cost

    async def close(
        self,
        lease_id: str,
        total: ledger.UsageMap,
        *,
        unknown_worst: int = 0,
        whole: bool = False,
        retries: RetryCounts = NO_RETRIES,
    ) -> tuple[ledger.Closing | None, Doc]:
        """Close a lease at its attempt's total usage: (closing, or None if not now; lease).

        ``unknown_worst`` (calls of unknown outcome) or ``whole`` (a lost holder)
        is charged without usage detail (``unreconciled``): what a lease is
        closed at when there is no invocation log. A lease held for
        reconciliation is left to the reconciler. Step one marks the lease
        closed with its final usage; step two moves it from the ledger's
        ``pending`` into the totals. Both are idempotent, so a redelivery after a
        crash between them completes the second.
        """
        lease = await self.known_lease(lease_id)
        closing = None
        if not lease["closed"] and not lease.get("reconcile"):
            final_usage, known = self.usage_with(lease, total)
            amount = int(lease["amount"])
            charge = ledger.unlogged_charge(amount, known, unknown_worst, whole=whole)
            closing = ledger.close_lease(amount, int(lease["settled"]), known + charge)
            updated = await self.leases.find_one_and_update(
                {"_id": lease_id, "closed": False, "reconcile": {"$exists": False}},
                {
                    "$set": {
                        "closed": True,
                        "usage": final_usage,
                        "settled": known + charge,
                        "unreconciled": charge,
                        "closed_at": utcnow(),
                    },
                    **retries_at_least(retries),
                },
                return_document=ReturnDocument.AFTER,
            )
            lease = updated or await self.known_lease(lease_id)
        if lease["closed"]:
            await self.apply_closing(lease)
        return closing, lease

    async def release_unheld(self, lease: Doc) -> None:
        """Return what a held lease no longer holds (once: while pending is the whole amount)."""
        amount = int(lease["amount"])
        reserved = int(lease.get("reserved", amount))
        if reserved >= amount:
            return
        released = await self.ledgers.update_one(
            {"_id": lease["job_id"], f"pending.{lease['_id']}": amount},
            {
                "$set": {f"pending.{lease['_id']}": reserved},
                "$inc": {"available": amount - reserved},
            },
        )
        if released.modified_count:
            metrics.RETURNED.inc(usd(amount - reserved))

    async def apply_closing(self, lease: Doc) -> None:
        """Move a closed lease from the ledger's ``pending`` into its totals (once)."""
        await self.release_unheld(lease)
        spent = int(lease["settled"])
        reserved = int(lease.get("reserved", int(lease["amount"])))
        inc = ledger.aggregate_increments(lease.get("usage") or {})
        inc.update({"available": reserved - spent, "spent": spent})
        inc.update(ledger.retry_totals(lease.get("retries") or {}))
        unreconciled = int(lease.get("unreconciled") or 0)
        if unreconciled:
            inc["unreconciled"] = unreconciled
        result = await self.ledgers.update_one(
            {"_id": lease["job_id"], f"pending.{lease['_id']}": {"$exists": True}},
            {"$inc": inc, "$unset": {f"pending.{lease['_id']}": ""}},
        )
        if result.modified_count:
            metrics.SETTLED.inc(usd(spent))
            metrics.RETURNED.inc(usd(reserved - spent))

    async def purge_job(self, job_id: str) -> int:
        """Delete a deleted job's leases and ledger; how many leases were deleted."""
        leases = await self.leases.delete_many({"job_id": job_id})
        await self.ledgers.delete_one({"_id": job_id})
        return leases.deleted_count

    async def mark_exceeded(self, job_id: str) -> bool:
        """Flag the ledger as exceeded; True the first time."""
        result = await self.ledgers.update_one(
            {"_id": job_id, "exceeded": False}, {"$set": {"exceeded": True}}
        )
        return result.modified_count == 1
