"""MongoDB access of held leases: kept until the invocation log settles them.

A hold (an attempt ended with calls of unknown outcome, or its holder was lost)
records ``reconcile`` on the lease (the marker: only a lease without one is
held), and for unknown calls shrinks ``pending.<lease_id>`` from the lease's
amount to what it still holds, returning the rest (the marker: the pending value
still equal to the amount). The lease's ``reserved`` remembers the held value,
so the closing (``LedgerRepository.apply_closing``) returns ``reserved - settled``.

A held lease is closed by the reconciler (``reconciler.py``) once the provider's
invocation log is complete for it: ``reconcile.state`` goes ``waiting`` ->
``closed`` (lease closed at the logged usage) -> ``done`` (closing applied to the
ledger and ``LeaseClosed`` published); each step is repeated until it sticks.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pymongo import ReturnDocument

from palette.accounting import ledger
from palette.accounting.repository import (
    NO_RETRIES,
    Doc,
    LedgerRepository,
    retries_at_least,
)
from palette.common.messages import RetryCounts, utcnow


class LeaseHolds:
    """Leases held for reconciliation, in the ledger repository's collections."""

    def __init__(self, ledgers: LedgerRepository) -> None:
        self.ledgers = ledgers
        self.leases = ledgers.leases

    async def hold(
        self,
        lease_id: str,
        total: ledger.UsageMap,
        *,
        due: datetime,
        unknown_calls: Sequence[str] = (),
        unknown_worst: int = 0,
        lost_holder: str | None = None,
        retries: RetryCounts = NO_RETRIES,
    ) -> Doc:
        """Hold a lease until the invocation log is complete for it (at ``due``); the lease.

        Unknown calls keep the attempt's known cost plus their summed worst
        case and return the rest of the lease now; a ``lost_holder`` keeps the
        whole lease. A lease closed or held before is returned unchanged: the
        first end of an attempt decides.
        """
        lease = await self.ledgers.known_lease(lease_id)
        if not lease["closed"] and not lease.get("reconcile"):
            fields: Doc
            if lost_holder is not None:
                fields = {"kind": "lost", "holder": lost_holder}
                update: Doc = {}
            else:
                final_usage, known = self.ledgers.usage_with(lease, total)
                held = ledger.held_amount(int(lease["amount"]), known, unknown_worst)
                fields = {"kind": "unknown", "calls": list(unknown_calls), "worst": unknown_worst}
                update = {"usage": final_usage, "settled": known, "reserved": held}
            fields |= {"due": due, "state": "waiting", "held_at": utcnow()}
            updated = await self.leases.find_one_and_update(
                {"_id": lease_id, "closed": False, "reconcile": {"$exists": False}},
                {"$set": {**update, "reconcile": fields}, **retries_at_least(retries)},
                return_document=ReturnDocument.AFTER,
            )
            lease = updated or await self.ledgers.known_lease(lease_id)
        if not lease["closed"]:
            await self.ledgers.release_unheld(lease)
        return lease

    async def due_holds(self, now: datetime, limit: int = 200) -> list[Doc]:
        """Held leases whose log is complete by ``now`` (or whose closing is unfinished)."""
        cursor = self.leases.find(
            {"reconcile.state": {"$in": ["waiting", "closed"]}, "reconcile.due": {"$lte": now}}
        ).limit(limit)
        return [doc async for doc in cursor]

    async def settle_hold(
        self, lease_id: str, usage: ledger.UsageMap, settled: int, unreconciled: int = 0
    ) -> Doc:
        """Close a held lease at its reconciled usage and apply it to the ledger; the lease."""
        updated = await self.leases.find_one_and_update(
            {"_id": lease_id, "closed": False, "reconcile.state": "waiting"},
            {
                "$set": {
                    "closed": True,
                    "usage": usage,
                    "settled": settled,
                    "unreconciled": unreconciled,
                    "closed_at": utcnow(),
                    "reconcile.state": "closed",
                }
            },
            return_document=ReturnDocument.AFTER,
        )
        lease = updated or await self.ledgers.known_lease(lease_id)
        if lease["closed"]:
            await self.ledgers.apply_closing(lease)
        return lease

    async def hold_done(self, lease_id: str) -> None:
        """The held lease's closing is applied and announced."""
        await self.leases.update_one(
            {"_id": lease_id, "reconcile.state": "closed"}, {"$set": {"reconcile.state": "done"}}
        )
