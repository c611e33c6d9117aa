"""Deleting a finished job: the scheduler checks it, announces ``JobDeleted``, drops its documents.

Only a job that has ended and whose export is settled (written, failed, or
never to come) is deleted; anything else is left alone (a direct publisher
cannot delete a running job, nor another user's). The order makes a crash at
any point safe: ``JobDeleted`` goes out first (accounting and the generator
purge the ledger and the S3 objects), then the partitions, parts and job
documents go; a redelivered ``DeleteJob`` finds the job gone and announces
``JobDeleted`` again, which every purge applies as a no-op.
"""

from __future__ import annotations

from typing import Any

import structlog
from faststream.rabbit import RabbitBroker

from palette.common import messages as m
from palette.common.broker import publish
from palette.common.job_document import job_settled
from palette.scheduler.repository import SchedulerRepository

log = structlog.get_logger("palette.scheduler.purge")


def deletable(job: dict[str, Any]) -> bool:
    """Whether a job has ended and nothing more will be written for it."""
    return job_settled(job)


async def delete_job(repo: SchedulerRepository, broker: RabbitBroker, msg: m.DeleteJob) -> None:
    """Delete the owner's finished job and its scheduler documents, announcing it first."""
    bound = log.bind(job_id=msg.job_id, message_id=msg.message_id)
    job = await repo.job(msg.job_id)
    if job is not None and (job.get("owner") != msg.owner or not deletable(job)):
        bound.warning("delete_refused", status=job.get("status"))
        return
    await publish(broker, m.JobDeleted(message_id=f"deleted-{msg.job_id}", job_id=msg.job_id))
    partitions = await repo.purge_job(msg.job_id)
    bound.info("job_deleted", partitions=partitions)
