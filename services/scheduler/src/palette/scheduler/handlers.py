"""Scheduler handlers: one thin function per message."""

from __future__ import annotations

from palette.common import messages as m
from palette.common.broker import Context
from palette.scheduler.lifecycle import Scheduler


async def submit_job(msg: m.SubmitJob, scheduler: Scheduler = Context("scheduler")) -> None:
    """Create (if new) and start a job."""
    await scheduler.submit(msg)


async def cancel_job(msg: m.CancelJob, scheduler: Scheduler = Context("scheduler")) -> None:
    """Cancel a queued or running job."""
    await scheduler.stop(msg.job_id, m.JobStatus.CANCELLED, msg.reason)


async def budget_reserved(
    msg: m.BudgetReserved, scheduler: Scheduler = Context("scheduler")
) -> None:
    """Dispatch the partition that got a lease."""
    await scheduler.reserved(msg)


async def budget_denied(msg: m.BudgetDenied, scheduler: Scheduler = Context("scheduler")) -> None:
    """Hold the partition until money comes back."""
    await scheduler.denied(msg)


async def budget_exceeded(
    msg: m.BudgetExceeded, scheduler: Scheduler = Context("scheduler")
) -> None:
    """Stop the job: no more money can be granted."""
    await scheduler.stop(msg.job_id, m.JobStatus.BUDGET_EXCEEDED, "budget exhausted")


async def lease_closed(msg: m.LeaseClosed, scheduler: Scheduler = Context("scheduler")) -> None:
    """Money came back: wake waiting partitions, finish if all is settled."""
    await scheduler.lease_closed(msg)


async def records_generated(
    msg: m.RecordsGenerated, scheduler: Scheduler = Context("scheduler")
) -> None:
    """Count progress."""
    await scheduler.records(msg)


async def partition_completed(
    msg: m.PartitionCompleted, scheduler: Scheduler = Context("scheduler")
) -> None:
    """An attempt ended."""
    await scheduler.completed(msg)


async def partition_failed(
    msg: m.PartitionFailed, scheduler: Scheduler = Context("scheduler")
) -> None:
    """An attempt failed."""
    await scheduler.failed(msg)


async def export_completed(
    msg: m.ExportCompleted, scheduler: Scheduler = Context("scheduler")
) -> None:
    """The dataset is written."""
    await scheduler.export_completed(msg)


async def export_failed(msg: m.ExportFailed, scheduler: Scheduler = Context("scheduler")) -> None:
    """The dataset could not be written."""
    await scheduler.export_failed(msg)
