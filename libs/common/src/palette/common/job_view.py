"""The read side of ``jobs``, for the services that read it but never write it.

The gateway and the scheduler write a job (``palette.common.job_document``
builds it); accounting reads its budget, owner and status, and a generator its
status and what an export needs. Those readers go through these functions, so
the collection's field names are spelled in the writers and here only, the way
``lease_view`` serves accounting's ``leases``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from palette.common.messages import JobStatus
from palette.common.targets import GENERATED, KEPT, Target

JOBS = "jobs"
"""The collection (written by the gateway and the scheduler)."""

Database = AsyncDatabase[dict[str, Any]]


async def job_status(db: Database, job_id: str) -> JobStatus | None:
    """The job's status, or None when there is no such job (yet, or any more)."""
    doc = await db[JOBS].find_one({"_id": job_id}, {"status": 1})
    if doc is None or doc.get("status") is None:
        return None
    return JobStatus(doc["status"])


async def job_owner(db: Database, job_id: str) -> str | None:
    """The job's owner, or None when there is no such job (or it names none)."""
    doc = await db[JOBS].find_one({"_id": job_id}, {"owner": 1})
    return None if doc is None else str(doc.get("owner") or "") or None


async def job_budget_picos(db: Database, job_id: str) -> int | None:
    """The job's budget in picodollars, or None when there is no such job."""
    doc = await db[JOBS].find_one({"_id": job_id}, {"budget_picos": 1})
    return None if doc is None else int(doc["budget_picos"])


@dataclass(frozen=True, slots=True)
class ExportFacts:
    """What writing a job's dataset needs of its document, as stored."""

    num_records: int
    """The records the job asked for (``num_records``)."""
    planned_records: int
    """Record indexes ``[0, planned_records)`` planned so far (a kept job plans more)."""
    template: dict[str, Any]
    """The template snapshot taken when the job was accepted."""
    keep_if: str | None
    dedup: dict[str, Any] | None
    target: Target
    """``generated`` (also when the document names none) or ``kept``."""


async def export_facts(db: Database, job_id: str) -> ExportFacts | None:
    """The job's export facts, or None when there is no such job."""
    fields = ("num_records", "planned_records", "template", "keep_if", "dedup", "target")
    doc = await db[JOBS].find_one({"_id": job_id}, dict.fromkeys(fields, 1))
    if doc is None:
        return None
    num_records = int(doc["num_records"])
    return ExportFacts(
        num_records=num_records,
        planned_records=int(doc.get("planned_records") or num_records),
        template=doc["template"],
        keep_if=doc.get("keep_if"),
        dedup=doc.get("dedup") or None,
        target=KEPT if doc.get("target") == KEPT else GENERATED,
    )


@dataclass(frozen=True, slots=True)
class SeedFacts:
    """What a started job's records draw from, as stored."""

    template: dict[str, Any]
    seed_key: str
    seed_count: int
    seed_sampling: Any
    """``"uniform"`` (also when the document names none), ``"shuffle"`` or ``{"stratify": F}``."""


async def seed_facts(db: Database, job_id: str) -> SeedFacts | None:
    """The job's template and seeds, or None when there is no such job or it never started."""
    fields = ("template", "seed_key", "seed_count", "seed_sampling")
    doc = await db[JOBS].find_one({"_id": job_id}, dict.fromkeys(fields, 1))
    if doc is None or doc.get("seed_count") is None:
        return None
    return SeedFacts(
        template=doc["template"],
        seed_key=str(doc["seed_key"]),
        seed_count=int(doc["seed_count"]),
        seed_sampling=doc.get("seed_sampling") or "uniform",
    )
