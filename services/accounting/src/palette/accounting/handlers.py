"""Accounting handlers: one function per message."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from faststream.rabbit import RabbitBroker

from palette.accounting import ledger, thresholds
from palette.accounting.repository import LedgerRepository, UnknownJobError
from palette.accounting.settings import AccountingSettings
from palette.common import failpoints
from palette.common.broker import Context, PermanentError, publish
from palette.common.messages import (
    BudgetDenied,
    BudgetExceeded,
    BudgetReserved,
    LeaseClosed,
    PartitionCompleted,
    PartitionFailed,
    RecordsGenerated,
    ReserveBudget,
    StepUsage,
    utcnow,
)
from palette.common.pricing import PricingTable, UnknownModelError

log = structlog.get_logger("palette.accounting")


async def reserve_budget(
    msg: ReserveBudget,
    repo: LedgerRepository = Context("repo"),
    broker: RabbitBroker = Context("broker"),
) -> None:
    """Grant a lease from the job's remaining budget, or deny it."""
    bound = log.bind(job_id=msg.job_id, partition_id=msg.partition, message_id=msg.message_id)
    try:
        outcome = await repo.reserve(
            msg.job_id, msg.partition, msg.lease_id, msg.amount, msg.minimum
        )
    except UnknownJobError as exc:
        raise PermanentError(f"no job document for {msg.job_id}") from exc
    failpoints.hit("accounting.after_write")
    reply_id = f"{msg.message_id}.reply"
    if outcome.granted is not None:
        bound.info("lease_granted", lease_id=msg.lease_id, amount=outcome.granted)
        await publish(
            broker,
            BudgetReserved(
                message_id=reply_id,
                job_id=msg.job_id,
                partition=msg.partition,
                lease_id=msg.lease_id,
                amount=outcome.granted,
            ),
        )
        return
    bound.info("lease_denied", available=outcome.available, minimum=msg.minimum)
    await publish(
        broker,
        BudgetDenied(
            message_id=reply_id,
            job_id=msg.job_id,
            partition=msg.partition,
            lease_id=msg.lease_id,
            minimum=msg.minimum,
            available=outcome.available,
        ),
    )
    if outcome.reserved == 0:
        # Nothing is out on lease, so no money can come back: the job is done.
        current = await repo.ensure_ledger(msg.job_id)
        await repo.mark_exceeded(msg.job_id)
        bound.info("budget_exceeded", spent=current["spent"], budget=current["budget"])
        await publish(
            broker,
            BudgetExceeded(
                message_id=f"{msg.job_id}.exceeded",
                job_id=msg.job_id,
                budget=current["budget"],
                spent=current["spent"],
            ),
        )


def _priced(usage: tuple[StepUsage, ...], pricing: PricingTable) -> ledger.UsageMap:
    try:
        return ledger.usage_map(usage, pricing)
    except UnknownModelError as exc:
        raise PermanentError(str(exc)) from exc


async def records_generated(
    msg: RecordsGenerated,
    repo: LedgerRepository = Context("repo"),
    pricing: PricingTable = Context("pricing"),
    broker: RabbitBroker = Context("broker"),
) -> None:
    """Settle the exact cost of a written part against its lease; announce thresholds reached."""
    usage = _priced(msg.usage, pricing)
    try:
        applied = await repo.settle(msg.message_id, msg.lease_id, usage)
        failpoints.hit("accounting.after_write")
    except UnknownJobError as exc:
        raise PermanentError(str(exc)) from exc
    log.info(
        "usage_settled",
        job_id=msg.job_id,
        partition_id=msg.partition,
        message_id=msg.message_id,
        cost=applied,
        duplicate=applied is None,
    )
    await thresholds.announce(repo, broker, msg.job_id)


async def announce_closed(broker: RabbitBroker, lease: dict[str, Any]) -> None:
    """Announce a closed lease (on every delivery: the scheduler applies it once)."""
    await publish(
        broker,
        LeaseClosed(
            message_id=f"closed-{lease['_id']}",
            job_id=lease["job_id"],
            partition=int(lease["partition"]),
            lease_id=lease["_id"],
            spent=int(lease["settled"]),
            returned=int(lease["amount"]) - int(lease["settled"]),
        ),
    )


async def _end(
    msg: PartitionCompleted | PartitionFailed,
    lost_holder: str | None,
    repo: LedgerRepository,
    pricing: PricingTable,
    broker: RabbitBroker,
    settings: AccountingSettings,
) -> None:
    """An attempt ended: close its lease, or hold it for the invocation log.

    A lease whose attempt left calls of unknown outcome, or whose holder was
    lost, is held until the log is complete for it when there is a log, and
    closed at the worst case at once when there is none.
    """
    usage = _priced(msg.usage, pricing)
    uncertain = bool(msg.unknown_calls) or lost_holder is not None
    bound = log.bind(
        job_id=msg.job_id,
        partition_id=msg.partition,
        message_id=msg.message_id,
        lease_id=msg.lease_id,
        unknown_calls=len(msg.unknown_calls),
        lost_holder=lost_holder,
    )
    try:
        if uncertain and settings.invocation_log_bucket:
            due = utcnow() + timedelta(seconds=settings.reconcile_wait_seconds)
            lease = await repo.hold(
                msg.lease_id,
                usage,
                due=due,
                unknown_calls=msg.unknown_calls,
                unknown_worst=msg.unknown_worst,
                lost_holder=lost_holder,
            )
            closing = None
        else:
            closing, lease = await repo.close(
                msg.lease_id,
                usage,
                unknown_worst=msg.unknown_worst,
                whole=lost_holder is not None,
            )
        failpoints.hit("accounting.after_write")
    except UnknownJobError as exc:
        raise PermanentError(str(exc)) from exc
    if not lease["closed"]:
        reconcile = lease.get("reconcile") or {}
        bound.info("lease_held", until=str(reconcile.get("due")), reserved=lease.get("reserved"))
        return
    bound.info(
        "lease_closed",
        returned=closing.returned if closing else None,
        unreconciled=lease.get("unreconciled", 0),
        duplicate=closing is None,
    )
    # Published on every delivery (the scheduler applies it once), so a crash
    # between the ledger write and this publish loses nothing.
    await announce_closed(broker, lease)
    await thresholds.announce(repo, broker, msg.job_id)


async def partition_completed(
    msg: PartitionCompleted,
    repo: LedgerRepository = Context("repo"),
    pricing: PricingTable = Context("pricing"),
    broker: RabbitBroker = Context("broker"),
    settings: AccountingSettings = Context("settings"),
) -> None:
    """Close the attempt's lease at its total usage (the rest returns), or hold it."""
    await _end(msg, None, repo, pricing, broker, settings)


async def partition_failed(
    msg: PartitionFailed,
    repo: LedgerRepository = Context("repo"),
    pricing: PricingTable = Context("pricing"),
    broker: RabbitBroker = Context("broker"),
    settings: AccountingSettings = Context("settings"),
) -> None:
    """Close a failed attempt's lease at what it spent, or hold it (unknown calls, lost holder)."""
    await _end(msg, msg.lost_holder, repo, pricing, broker, settings)
