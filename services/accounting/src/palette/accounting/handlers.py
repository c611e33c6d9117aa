"""Accounting handlers: one function per message, and ``HANDLERS``, what consumes what.

Every handler acts on the process's ``AccountingRuntime``. The rules (grants,
denials, closings, preview charges) are in ``ledger.py`` and ``previews.py``;
the atomic updates in ``repository.py`` and ``preview_repository.py``.
"""

from __future__ import annotations

from datetime import timedelta

import structlog

from palette.accounting import ledger, previews, thresholds, webhook_events
from palette.accounting.repository import Doc, UnknownJobError
from palette.accounting.runtime import AccountingRuntime
from palette.common import failpoints
from palette.common.broker import PermanentError, publish
from palette.common.messages import (
    BudgetDenied,
    BudgetExceeded,
    BudgetReserved,
    BudgetThresholdReached,
    JobDeleted,
    JobStatusChanged,
    PartitionCompleted,
    PartitionFailed,
    PreviewBudgetResult,
    PreviewCompleted,
    RecordsGenerated,
    ResendWebhookDelivery,
    ReserveBudget,
    ReservePreviewBudget,
    SendTestWebhook,
    StepUsage,
    utcnow,
)
from palette.common.pricing import PricingTable, UnknownModelError
from palette.common.service import Handlers, Injected
from palette.common.topology import Queues

log = structlog.get_logger("palette.accounting")


async def reserve_budget(msg: ReserveBudget, rt: Injected[AccountingRuntime]) -> None:
    """Grant a lease from the job's remaining budget, or deny it."""
    bound = log.bind(job_id=msg.job_id, partition_id=msg.partition, message_id=msg.message_id)
    try:
        outcome = await rt.ledgers.reserve(
            msg.job_id, msg.partition, msg.lease_id, msg.amount, msg.minimum
        )
    except UnknownJobError as exc:
        raise PermanentError(f"no job document for {msg.job_id}") from exc
    failpoints.hit("accounting.after_write")
    reply_id = f"{msg.message_id}.reply"
    if outcome.granted is not None:
        bound.info("lease_granted", lease_id=msg.lease_id, amount=outcome.granted)
        await publish(
            rt.broker,
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
        rt.broker,
        BudgetDenied(
            message_id=reply_id,
            job_id=msg.job_id,
            partition=msg.partition,
            lease_id=msg.lease_id,
            minimum=msg.minimum,
            available=outcome.available,
        ),
    )
    if ledger.budget_exceeded(outcome):
        current = await rt.ledgers.ensure_ledger(msg.job_id)
        await rt.ledgers.mark_exceeded(msg.job_id)
        bound.info("budget_exceeded", spent=current["spent"], budget=current["budget"])
        await publish(
            rt.broker,
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


async def records_generated(msg: RecordsGenerated, rt: Injected[AccountingRuntime]) -> None:
    """Settle the exact cost of a written part against its lease; announce thresholds reached."""
    usage = _priced(msg.usage, rt.pricing)
    try:
        applied = await rt.ledgers.settle(msg.message_id, msg.lease_id, usage, msg.retries)
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
    await thresholds.announce(rt.ledgers, rt.broker, msg.job_id)


async def _close_or_hold(
    msg: PartitionCompleted | PartitionFailed,
    lost_holder: str | None,
    usage: ledger.UsageMap,
    rt: AccountingRuntime,
) -> tuple[ledger.Closing | None, Doc]:
    """Close the attempt's lease, or hold it for the invocation log: (closing, lease).

    A lease whose attempt left calls of unknown outcome, or whose holder was
    lost, is held until the log is complete for it when there is a log, and
    closed at the worst case at once when there is none.
    """
    held = ledger.held_for_log(
        unknown_calls=len(msg.unknown_calls),
        lost_holder=lost_holder is not None,
        log_configured=bool(rt.settings.invocation_log_bucket),
    )
    try:
        if held:
            due = utcnow() + timedelta(seconds=rt.settings.reconcile_wait_seconds)
            lease = await rt.holds.hold(
                msg.lease_id,
                usage,
                due=due,
                unknown_calls=msg.unknown_calls,
                unknown_worst=msg.unknown_worst,
                lost_holder=lost_holder,
                retries=msg.retries,
            )
            closing = None
        else:
            closing, lease = await rt.ledgers.close(
                msg.lease_id,
                usage,
                unknown_worst=msg.unknown_worst,
                whole=lost_holder is not None,
                retries=msg.retries,
            )
        failpoints.hit("accounting.after_write")
    except UnknownJobError as exc:
        raise PermanentError(str(exc)) from exc
    return closing, lease


async def _end(
    msg: PartitionCompleted | PartitionFailed, lost_holder: str | None, rt: AccountingRuntime
) -> None:
    """An attempt ended: close its lease, or hold it for the invocation log."""
    usage = _priced(msg.usage, rt.pricing)
    closing, lease = await _close_or_hold(msg, lost_holder, usage, rt)
    bound = log.bind(
        job_id=msg.job_id,
        partition_id=msg.partition,
        message_id=msg.message_id,
        lease_id=msg.lease_id,
        unknown_calls=len(msg.unknown_calls),
        lost_holder=lost_holder,
    )
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
    await publish(rt.broker, ledger.lease_closed(lease))
    await thresholds.announce(rt.ledgers, rt.broker, msg.job_id)


async def partition_completed(msg: PartitionCompleted, rt: Injected[AccountingRuntime]) -> None:
    """Close the attempt's lease at its total usage (the rest returns), or hold it."""
    await _end(msg, None, rt)


async def partition_failed(msg: PartitionFailed, rt: Injected[AccountingRuntime]) -> None:
    """Close a failed attempt's lease at what it spent, or hold it (unknown calls, lost holder)."""
    await _end(msg, msg.lost_holder, rt)


async def job_deleted(msg: JobDeleted, rt: Injected[AccountingRuntime]) -> None:
    """Delete the job's ledger and leases."""
    # The scheduler announces JobDeleted only for a job that has ended with every
    # lease closed, so nothing writes these any more; a redelivery deletes nothing.
    leases = await rt.ledgers.purge_job(msg.job_id)
    log.info("ledger_purged", job_id=msg.job_id, message_id=msg.message_id, leases=leases)


async def reserve_preview_budget(
    msg: ReservePreviewBudget, rt: Injected[AccountingRuntime]
) -> PreviewBudgetResult:
    """Reserve the preview's worst case from its owner's budget of the day; the reply."""
    result = await rt.previews.reserve(msg, utcnow(), rt.settings.preview_hold_seconds)
    log.info(
        "preview_budget_reserved" if result.granted else "preview_budget_denied",
        preview_id=msg.preview_id,
        owner=msg.owner,
        amount=msg.amount,
        limit=msg.limit,
        spent=result.spent,
        reserved=result.reserved,
        reason=result.reason,
    )
    return result


async def preview_completed(msg: PreviewCompleted, rt: Injected[AccountingRuntime]) -> None:
    """Charge what the preview spent, exactly, and release its reservation (once)."""
    try:
        charge = previews.charge(msg.usage, msg.unknown_worst, rt.pricing)
    except UnknownModelError as exc:
        raise PermanentError(str(exc)) from exc
    applied = await rt.previews.settle(msg, charge, utcnow())
    log.info(
        "preview_settled",
        preview_id=msg.preview_id,
        owner=msg.owner,
        cost=charge.cost,
        unreconciled=charge.unreconciled,
        duplicate=not applied,
    )


async def job_status_changed(msg: JobStatusChanged, rt: Injected[AccountingRuntime]) -> None:
    """A job ended: its owner's webhooks of that event get a delivery each."""
    await webhook_events.job_status_changed(msg, rt.webhooks, rt.sender, rt.settings)


async def budget_threshold_reached(
    msg: BudgetThresholdReached, rt: Injected[AccountingRuntime]
) -> None:
    """A job spent 75 % or 90 % of its budget: its owner's webhooks of that event hear it."""
    await webhook_events.budget_threshold_reached(msg, rt.webhooks, rt.sender, rt.settings)


async def send_test_webhook(msg: SendTestWebhook, rt: Injected[AccountingRuntime]) -> None:
    """Send a test event to one webhook (whatever it subscribes to)."""
    await webhook_events.send_test_webhook(msg, rt.webhooks, rt.sender, rt.settings)


async def resend_webhook_delivery(
    msg: ResendWebhookDelivery, rt: Injected[AccountingRuntime]
) -> None:
    """Deliver an event to a webhook again: due now, retried for another bounded time."""
    await webhook_events.resend_webhook_delivery(msg, rt.webhooks, rt.sender, rt.settings)


HANDLERS: Handlers = {
    Queues.RESERVE_BUDGET: reserve_budget,
    Queues.ACC_RECORDS: records_generated,
    Queues.ACC_PARTITION_COMPLETED: partition_completed,
    Queues.ACC_PARTITION_FAILED: partition_failed,
    Queues.ACC_JOB_DELETED: job_deleted,
    Queues.RESERVE_PREVIEW_BUDGET: reserve_preview_budget,
    Queues.ACC_PREVIEW_COMPLETED: preview_completed,
    Queues.ACC_JOB_STATUS_CHANGED: job_status_changed,
    Queues.ACC_BUDGET_THRESHOLD: budget_threshold_reached,
    Queues.SEND_TEST_WEBHOOK: send_test_webhook,
    Queues.RESEND_WEBHOOK: resend_webhook_delivery,
}
