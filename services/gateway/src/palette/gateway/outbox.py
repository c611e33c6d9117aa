"""The transactional outbox of ``SubmitJob``.

A job document is inserted with ``submit_published: false`` before the 201,
then its ``SubmitJob`` is published and the flag set. When that publish fails
(broker down, timeout), the loop here republishes it, with the same
``message_id``, until the broker takes it. The scheduler is idempotent on
``job_id``, so a duplicate publish has no second effect.

A job whose ``SubmitJob`` cannot be built from its document (it fails
validation) can never be published: the outbox fails it with the reason
(``FAILED``, ``error``), announces ``JobStatusChanged`` and never reads it again,
so such jobs cannot fill every batch and hold back everyone else's.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import structlog
from pydantic import ValidationError

from palette.common.messages import JobStatus, JobStatusChanged, SubmitJob, utcnow
from palette.common.tracing import resumed
from palette.gateway.job_views import submit_message
from palette.gateway.ports import Document, Publisher, Repository

log = structlog.get_logger("palette.gateway")

BATCH = 100


async def submit(repository: Repository, publisher: Publisher, message: SubmitJob) -> bool:
    """Publish a job's SubmitJob and set its outbox flag; False when the publish failed.

    A flag that cannot be set is only logged: the outbox publishes again later
    and the scheduler ignores the duplicate.
    """
    job_id = message.job_id
    try:
        await publisher.publish(message)
    except Exception as exc:
        log.warning("submit_deferred", job_id=job_id, error=repr(exc))
        return False
    try:
        await repository.mark_submitted(job_id)
    except Exception as exc:
        log.warning("submit_flag_not_set", job_id=job_id, error=repr(exc))
    log.info("job_submitted", job_id=job_id, message_id=message.message_id)
    return True


def unsubmittable_reason(exc: Exception) -> str:
    """Why a job's SubmitJob cannot be built, in one line."""
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'job'}: {error['msg']}"
            for error in exc.errors()
        )
    elif isinstance(exc, KeyError):
        problems = f"the job has no {exc.args[0]!r}"
    else:
        problems = str(exc)
    return f"the job cannot be submitted: {problems}"


async def refuse(repository: Repository, publisher: Publisher, job: Document, reason: str) -> None:
    """Fail a queued job whose SubmitJob cannot be built, and announce it."""
    job_id = str(job["_id"])
    if not await repository.fail_unsubmittable(job_id, reason, utcnow()):
        return  # no longer queued and unpublished: someone else moved it
    log.error("job_unsubmittable", job_id=job_id, error=reason)
    try:
        changed = JobStatusChanged(
            message_id=f"status-{job_id}-{JobStatus.FAILED.value}",
            job_id=job_id,
            owner=str(job.get("owner", "")),
            status=JobStatus.FAILED,
            previous=JobStatus.QUEUED,
            reason=reason,
        )
        await publisher.publish(changed)
    except Exception as exc:
        log.warning("status_change_not_announced", job_id=job_id, error=repr(exc))


async def flush(repository: Repository, publisher: Publisher, grace_seconds: float) -> int:
    """Republish the SubmitJob of jobs older than the grace period; returns how many went out."""
    cutoff = utcnow() - timedelta(seconds=grace_seconds)
    sent = 0
    for job in await repository.unsubmitted_jobs(cutoff, BATCH):
        job_id = str(job["_id"])
        if job.get("status") != JobStatus.QUEUED:
            # The scheduler already has it: it moved the state.
            await repository.mark_submitted(job_id)
            continue
        try:
            message = submit_message(job)
        except (ValidationError, KeyError, ValueError) as exc:
            await refuse(repository, publisher, job, unsubmittable_reason(exc))
            continue
        with resumed(job.get("traceparent")):  # the trace of the request that made it
            published = await submit(repository, publisher, message)
        if not published:
            break  # the broker is down; try the rest next round
        sent += 1
    return sent


async def run(
    repository: Repository, publisher: Publisher, *, interval_seconds: float, grace_seconds: float
) -> None:
    """Flush the outbox every ``interval_seconds`` until cancelled."""
    while True:
        await asyncio.sleep(interval_seconds)
        try:
            sent = await flush(repository, publisher, grace_seconds)
        except Exception as exc:
            log.warning("outbox_flush_failed", error=repr(exc))
        else:
            if sent:
                log.info("outbox_flushed", sent=sent)
