"""Settling held leases from the provider's invocation log, periodically.

A lease is held (``lease_holds.LeaseHolds.hold``) when its attempt ended
with calls whose outcome is unknown, or when its holder was lost. Once the log
is complete for it (``reconcile.due``: the end + the longest a call runs + the
log's delivery delay bound), the reconciler settles it:

- unknown calls cost what the log says they cost; a call absent from the
  complete log was not billed and costs nothing;
- a lost holder's lease costs the sum of every logged call tagged with it,
  which replaces what its parts reported;
- and both also cost what their batch jobs billed (``lease_batches``): a lease
  waits, past its due time, until those have ended.

The lease then closes like any other and ``LeaseClosed`` goes out. All state
is in the lease documents, so the pass is idempotent and survives restarts;
several accounting processes may run it at once.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import structlog
from faststream.rabbit import RabbitBroker

from palette.accounting import ledger, thresholds
from palette.accounting.invocation_reader import InvocationLogReader
from palette.accounting.invocations import LoggedCall
from palette.accounting.lease_batches import LeaseBatches
from palette.accounting.lease_holds import LeaseHolds
from palette.accounting.repository import Doc
from palette.common import failpoints
from palette.common.broker import publish
from palette.common.messages import utcnow
from palette.common.pricing import PricingTable

log = structlog.get_logger("palette.accounting.reconciler")

# Log objects are foldered by delivery hour; a lease's calls may sit one hour earlier.
FOLDER_SLACK = timedelta(hours=1)


def settlement(
    lease: Doc, calls: list[LoggedCall] | None, pricing: PricingTable
) -> tuple[ledger.Settlement, int]:
    """A held lease's settlement and the part of it charged without usage detail.

    ``calls`` is None when there is no invocation log (any more): unknown calls
    then settle at their worst case and a lost holder's lease at its amount.
    """
    hold = lease["reconcile"]
    usage = dict(lease.get("usage") or {})
    amount, settled = int(lease["amount"]), int(lease["settled"])
    if calls is None:
        lost = hold["kind"] == "lost"
        charge = ledger.unlogged_charge(amount, settled, int(hold.get("worst", 0)), whole=lost)
        return ledger.Settlement(usage, settled + charge, 0), charge
    if hold["kind"] == "lost":
        return ledger.settle_lost(calls, pricing), 0
    return ledger.settle_unknown(usage, settled, hold.get("calls") or [], calls, pricing), 0


class Reconciler:
    """Closes held leases once the invocation log is complete for them.

    Args:
        holds: the held leases (and, through them, the ledgers).
        reader: the invocation log (None: there is none).
        pricing: the pricing table.
        broker: where ``LeaseClosed`` goes.
        interval: seconds between passes.
        batches: the held leases' batch jobs (None: none are counted).
    """

    def __init__(
        self,
        holds: LeaseHolds,
        reader: InvocationLogReader | None,
        pricing: PricingTable,
        broker: RabbitBroker,
        interval: float,
        batches: LeaseBatches | None = None,
    ) -> None:
        self.batches = batches
        self.holds = holds
        self.reader = reader
        self.pricing = pricing
        self.broker = broker
        self.interval = interval

    async def run_forever(self) -> None:
        """Pass after pass until cancelled; a failed pass is logged and tried again."""
        while True:
            try:
                await self.run_once()
            except Exception:
                log.exception("reconcile_pass_failed")
            await asyncio.sleep(self.interval)

    async def run_once(self, now: datetime | None = None) -> int:
        """Settle every held lease that is due; the number settled."""
        now = now or utcnow()
        holds = await self.holds.due_holds(now)
        waiting = [h for h in holds if h["reconcile"]["state"] == "waiting"]
        logged: dict[str, list[LoggedCall]] | None = None
        if waiting and self.reader is not None:
            since = min(h.get("created_at") or now for h in waiting) - FOLDER_SLACK
            ids = {h["_id"] for h in waiting}
            logged = await asyncio.to_thread(self.reader.calls_of, ids, since, now)
        settled = 0
        for lease in holds:
            calls = None if logged is None else logged.get(lease["_id"], [])
            try:
                settled += await self._settle(lease, calls)
            except Exception:  # one bad lease must not hold up the others
                log.exception("lease_reconcile_failed", lease_id=lease["_id"])
        return settled

    async def _settle(self, lease: Doc, calls: list[LoggedCall] | None) -> bool:
        """Settle one held lease; False while one of its batch jobs still runs."""
        hold: dict[str, Any] = lease["reconcile"]
        if hold["state"] == "waiting":
            batches: ledger.UsageMap = {}
            if calls is not None and self.batches is not None:
                counted = await self.batches.usage(lease)
                if counted is None:
                    return False
                batches = counted
            result, charge = settlement(lease, calls, self.pricing)
            result = ledger.with_batches(result, batches)
            lease = await self.holds.settle_hold(lease["_id"], result.usage, result.settled, charge)
            failpoints.hit("accounting.after_write")
            bound = log.bind(job_id=lease["job_id"], lease_id=lease["_id"], kind=hold["kind"])
            bound.info(
                "lease_reconciled",
                settled=result.settled,
                logged_calls=result.logged_calls,
                unknown_calls=len(hold.get("calls") or []),
                unreconciled=charge,
                returned=int(lease["amount"]) - int(lease["settled"]),
            )
            if result.settled > int(lease["amount"]):
                bound.error("lease_overspent", amount=lease["amount"], settled=result.settled)
        if lease["closed"]:
            await publish(self.broker, ledger.lease_closed(lease))
            await self.holds.hold_done(lease["_id"])
            await thresholds.announce(self.holds.ledgers, self.broker, lease["job_id"])
        return True
