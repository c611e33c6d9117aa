"""Accounting handlers: one function per message."""

from __future__ import annotations

import structlog
from faststream.rabbit import RabbitBroker

from palette.accounting import ledger
from palette.accounting.repository import LedgerRepository, UnknownJobError
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
) -> None:
    """Settle the exact cost of a written part against its lease."""
    usage = _priced(msg.usage, pricing)
    try:
        applied = await repo.settle(msg.message_id, msg.lease_id, usage)
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


async def _close(
    message_id: str,
    job_id: str,
    partition: int,
    lease_id: str,
    usage: ledger.UsageMap,
    repo: LedgerRepository,
    broker: RabbitBroker,
) -> None:
    try:
        closing = await repo.close(lease_id, usage)
    except UnknownJobError as exc:
        raise PermanentError(str(exc)) from exc
    lease = await repo.lease(lease_id)
    assert lease is not None
    log.info(
        "lease_closed",
        job_id=job_id,
        partition_id=partition,
        message_id=message_id,
        lease_id=lease_id,
        returned=closing.returned if closing else None,
        duplicate=closing is None,
    )
    # Published on every delivery (the scheduler applies it once), so a crash
    # between the ledger write and this publish loses nothing.
    await publish(
        broker,
        LeaseClosed(
            message_id=f"closed-{lease_id}",
            job_id=job_id,
            partition=partition,
            lease_id=lease_id,
            spent=int(lease["settled"]),
            returned=int(lease["amount"]) - int(lease["settled"]),
        ),
    )


async def partition_completed(
    msg: PartitionCompleted,
    repo: LedgerRepository = Context("repo"),
    pricing: PricingTable = Context("pricing"),
    broker: RabbitBroker = Context("broker"),
) -> None:
    """Close the attempt's lease at its total usage; the rest returns."""
    usage = _priced(msg.usage, pricing)
    await _close(msg.message_id, msg.job_id, msg.partition, msg.lease_id, usage, repo, broker)


async def partition_failed(
    msg: PartitionFailed,
    repo: LedgerRepository = Context("repo"),
    pricing: PricingTable = Context("pricing"),
    broker: RabbitBroker = Context("broker"),
) -> None:
    """Close a failed attempt's lease at what it spent; the rest returns."""
    usage = _priced(msg.usage, pricing)
    await _close(msg.message_id, msg.job_id, msg.partition, msg.lease_id, usage, repo, broker)
