"""Purge of a deleted job's money records: its ledger, leases and ledger entries.

The scheduler announces ``JobDeleted`` only for a job that has ended with
every lease closed, so nothing writes these documents any more. Deleting
what is left is idempotent: a redelivery deletes nothing.
"""

from __future__ import annotations

import structlog

from palette.accounting.repository import LedgerRepository
from palette.common.broker import Context
from palette.common.messages import JobDeleted

log = structlog.get_logger("palette.accounting.purge")


async def job_deleted(msg: JobDeleted, repo: LedgerRepository = Context("repo")) -> None:
    """Delete the job's ledger and leases."""
    leases = await repo.leases.delete_many({"job_id": msg.job_id})
    await repo.ledgers.delete_one({"_id": msg.job_id})
    log.info(
        "ledger_purged",
        job_id=msg.job_id,
        message_id=msg.message_id,
        leases=leases.deleted_count,
    )
