"""Reads of ``jobs`` and ``leases`` (the generator writes only its ``claims``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from palette.common.lease_view import lease_closed
from palette.common.messages import JobStatus
from palette.common.templates import TemplateSpec


@dataclass(frozen=True, slots=True)
class ExportInfo:
    """What an export needs to know about its job."""

    num_records: int
    template: TemplateSpec


class JobsRepository:
    """Job status and export facts, read from the ``jobs`` collection."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._jobs = db["jobs"]

    async def status(self, job_id: str) -> JobStatus | None:
        """The job's status, or None when there is no such job (yet)."""
        doc = await self._jobs.find_one({"_id": job_id}, {"status": 1})
        if doc is None or doc.get("status") is None:
            return None
        return JobStatus(doc["status"])

    async def export_info(self, job_id: str) -> ExportInfo | None:
        """The job's record count and template snapshot, or None if no such job."""
        doc = await self._jobs.find_one({"_id": job_id}, {"num_records": 1, "template": 1})
        if doc is None:
            return None
        return ExportInfo(
            num_records=int(doc["num_records"]),
            template=TemplateSpec.model_validate(doc["template"]),
        )


class LeasesRepository:
    """Reads of the ``leases`` collection (written by accounting)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._db = db

    async def is_closed(self, lease_id: str) -> bool:
        """Whether the lease can no longer be spent: accounting closed it, or it is gone.

        A lease purged with its deleted job has its claims gone too.
        """
        return await lease_closed(self._db, lease_id)
