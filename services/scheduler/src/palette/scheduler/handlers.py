"""Scheduler handlers: one thin function per message, and ``HANDLERS``, what consumes what.

The scheduler's runtime is its ``Scheduler`` (``lifecycle.py``).
"""

from __future__ import annotations

from palette.common import messages as m
from palette.common.service import Handlers, Injected
from palette.common.topology import Queues
from palette.scheduler import purge
from palette.scheduler.lifecycle import Scheduler


async def submit_job(msg: m.SubmitJob, rt: Injected[Scheduler]) -> None:
    """Create (if new) and start a job."""
    await rt.submit(msg)


async def cancel_job(msg: m.CancelJob, rt: Injected[Scheduler]) -> None:
    """Cancel a queued or running job."""
    await rt.stop(msg.job_id, m.JobStatus.CANCELLED, msg.reason)


async def budget_reserved(msg: m.BudgetReserved, rt: Injected[Scheduler]) -> None:
    """Dispatch the partition that got a lease."""
    await rt.reserved(msg)


async def budget_denied(msg: m.BudgetDenied, rt: Injected[Scheduler]) -> None:
    """Hold the partition until money comes back."""
    await rt.denied(msg)


async def budget_exceeded(msg: m.BudgetExceeded, rt: Injected[Scheduler]) -> None:
    """Stop the job: no more money can be granted."""
    await rt.stop(msg.job_id, m.JobStatus.BUDGET_EXCEEDED, "budget exhausted")


async def lease_closed(msg: m.LeaseClosed, rt: Injected[Scheduler]) -> None:
    """Money came back: wake waiting partitions, finish if all is settled."""
    await rt.lease_closed(msg)


async def records_generated(msg: m.RecordsGenerated, rt: Injected[Scheduler]) -> None:
    """Count progress."""
    await rt.records(msg)


async def partition_completed(msg: m.PartitionCompleted, rt: Injected[Scheduler]) -> None:
    """An attempt ended."""
    await rt.completed(msg)


async def partition_failed(msg: m.PartitionFailed, rt: Injected[Scheduler]) -> None:
    """An attempt failed."""
    await rt.failed(msg)


async def export_completed(msg: m.ExportCompleted, rt: Injected[Scheduler]) -> None:
    """The dataset is written."""
    await rt.export_completed(msg)


async def export_failed(msg: m.ExportFailed, rt: Injected[Scheduler]) -> None:
    """The dataset could not be written."""
    await rt.export_failed(msg)


async def delete_job(msg: m.DeleteJob, rt: Injected[Scheduler]) -> None:
    """Delete the owner's finished job and its scheduler documents, announcing it first."""
    await purge.delete_job(rt.repo, rt.broker, msg)


HANDLERS: Handlers = {
    Queues.SUBMIT_JOB: submit_job,
    Queues.CANCEL_JOB: cancel_job,
    Queues.SCHED_BUDGET_RESERVED: budget_reserved,
    Queues.SCHED_BUDGET_DENIED: budget_denied,
    Queues.SCHED_BUDGET_EXCEEDED: budget_exceeded,
    Queues.SCHED_LEASE_CLOSED: lease_closed,
    Queues.SCHED_RECORDS: records_generated,
    Queues.SCHED_PARTITION_COMPLETED: partition_completed,
    Queues.SCHED_PARTITION_FAILED: partition_failed,
    Queues.SCHED_EXPORT_COMPLETED: export_completed,
    Queues.SCHED_EXPORT_FAILED: export_failed,
    Queues.DELETE_JOB: delete_job,
}
