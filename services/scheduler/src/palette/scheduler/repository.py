"""MongoDB access of the scheduler: job state, partitions and progress.

Job status moves only by conditional updates (``status`` in the filter), so
two deliveries or two scheduler processes cannot move a job twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError

from palette.common.job_document import ExportStatus
from palette.common.lease_view import open_leases
from palette.common.messages import JobStatus, utcnow
from palette.scheduler.states import (
    ACTIVE,
    EXPORT_MOVES,
    IN_FLIGHT,
    JOB_MOVES,
    PARTITION_MOVES,
    ExportEvent,
    JobEvent,
    PartitionEvent,
    PartitionStatus,
)

Doc = dict[str, Any]


def _one_of(statuses: Iterable[StrEnum]) -> Any:
    """A filter value matching any of ``statuses`` (equality for one)."""
    values = sorted(status.value for status in statuses)
    return values[0] if len(values) == 1 else {"$in": values}


class SchedulerRepository:
    """The scheduler's view of ``jobs`` and ``partitions`` (and accounting's ``leases``)."""

    def __init__(self, client: AsyncMongoClient[Doc], database: str) -> None:
        self.db = client[database]
        self.jobs = self.db["jobs"]
        self.partitions = self.db["partitions"]

    async def create_indexes(self) -> None:
        """Indexes the scheduler's queries use."""
        await self.partitions.create_index([("job_id", ASCENDING), ("status", ASCENDING)])
        await self.jobs.create_index([("status", ASCENDING)])
        await self.jobs.create_index([("status_announced", ASCENDING)])
        await self.partitions.create_index([("status", ASCENDING), ("paused_until", ASCENDING)])

    # ---------------------------------------------------------------- jobs

    async def job(self, job_id: str) -> Doc | None:
        """The job document."""
        return await self.jobs.find_one({"_id": job_id})

    async def purge_job(self, job_id: str) -> int:
        """Delete a job's partitions, then the job; how many partitions were deleted."""
        partitions = await self.partitions.delete_many({"job_id": job_id})
        await self.jobs.delete_one({"_id": job_id})
        return partitions.deleted_count

    async def upsert_job(self, job_id: str, fields: Doc) -> Doc:
        """Create the job if no document exists; return the document."""
        doc = await self.jobs.find_one({"_id": job_id})
        if doc is not None:
            return doc
        with contextlib.suppress(DuplicateKeyError):
            await self.jobs.insert_one({"_id": job_id, **fields})
        found = await self.jobs.find_one({"_id": job_id})
        assert found is not None
        return found

    async def move(self, job_id: str, event: JobEvent, **fields: Any) -> Doc | None:
        """Move a job's status by ``event`` if it allows the current one; the document before.

        The move is not announced yet (``status_announced`` false) until its
        ``JobStatusChanged`` is published (``announced``).
        """
        move = JOB_MOVES[event]
        changes = {"status": move.target.value, "updated_at": utcnow(), "status_announced": False}
        return await self.jobs.find_one_and_update(
            {"_id": job_id, "status": _one_of(move.sources)},
            {"$set": {**changes, **fields}},
            return_document=ReturnDocument.BEFORE,
        )

    async def announced(self, job_id: str, status: JobStatus) -> None:
        """The job's move to ``status`` is announced (unless it moved on since)."""
        await self.jobs.update_one(
            {"_id": job_id, "status": status.value}, {"$set": {"status_announced": True}}
        )

    async def unannounced(self) -> list[Doc]:
        """Jobs whose last move was made but not announced (the process died in between)."""
        return [doc async for doc in self.jobs.find({"status_announced": False})]

    async def move_export(self, job_id: str, event: ExportEvent, **fields: Any) -> bool:
        """Move the job's export by ``event`` if it allows the current one; True if it moved.

        The export becomes ``{"status": <target>, **fields}``.
        """
        move = EXPORT_MOVES[event]
        statuses = [status for status in move.sources if status is not None]
        matches = [{"export.status": _one_of(statuses)}] if statuses else []
        if None in move.sources:
            matches.append({"export": None})
        filter_ = matches[0] if len(matches) == 1 else {"$or": matches}
        export = {"status": move.target.value if move.target else None, **fields}
        return await self.set_job(job_id, filter_, {"export": export})

    async def export_sent(self, job_id: str) -> None:
        """Mark the job's pending export's ``ExportJob`` as published."""
        await self.set_job(
            job_id, {"export.status": ExportStatus.PENDING.value}, {"export.sent": True}
        )

    async def exports_unsent(self, before: datetime) -> list[Doc]:
        """Jobs whose export was asked for by ``before`` and whose ExportJob was not sent."""
        query = {
            "export.status": ExportStatus.PENDING.value,
            "export.sent": False,
            "export.requested_at": {"$lte": before},
        }
        fields = {"num_records": 1, "planned_records": 1, "output_format": 1, "export": 1}
        return [doc async for doc in self.jobs.find(query, fields)]

    async def set_job(self, job_id: str, filter_: Doc, fields: Doc) -> bool:
        """Conditionally set fields of a job; True if it matched."""
        result = await self.jobs.update_one({"_id": job_id, **filter_}, {"$set": fields})
        return result.matched_count == 1

    async def take_slot(self, job_id: str, lease_id: str) -> bool:
        """Put a lease in a free in-flight slot of a running job (one atomic update)."""
        result = await self.jobs.update_one(
            {"_id": job_id, "status": JobStatus.RUNNING.value, "slots": None},
            {"$set": {"slots.$": lease_id}},
        )
        return result.modified_count == 1

    async def give_slot(self, job_id: str, lease_id: str) -> None:
        """Free the slot a lease holds (idempotent: keyed by the lease)."""
        await self.jobs.update_one({"_id": job_id, "slots": lease_id}, {"$set": {"slots.$": None}})

    async def jobs_to_resume(self) -> list[Doc]:
        """Running jobs, and stopped jobs whose export is not done."""
        cursor = self.jobs.find(
            {
                "$or": [
                    {"status": JobStatus.RUNNING.value},
                    {
                        "status": {"$nin": sorted(status.value for status in ACTIVE)},
                        "export.status": {"$ne": ExportStatus.DONE.value},
                        "partitions_total": {"$gt": 0},
                    },
                ]
            }
        )
        return [doc async for doc in cursor]

    async def record_part(self, job_id: str, partition: int, key: str, records: int) -> bool:
        """Count a written part once toward progress.

        The partition's ``parts`` list is the idempotency marker; the job's
        ``records_done`` follows with a second update and is recounted from the
        partitions when a partition ends, so a crash between the two is healed.
        """
        result = await self.partitions.update_one(
            {"_id": f"{job_id}:{partition}", "parts": {"$ne": key}},
            {"$push": {"parts": key}, "$inc": {"progress": records}},
        )
        if not result.modified_count:
            return False
        await self.jobs.update_one({"_id": job_id}, {"$inc": {"records_done": records}})
        return True

    async def recount_progress(self, job_id: str) -> None:
        """Set the job's ``records_done`` from its partitions' counted parts."""
        total = 0
        async for part in self.partitions.find({"job_id": job_id}, {"progress": 1}):
            total += int(part.get("progress", 0))
        await self.jobs.update_one({"_id": job_id}, {"$set": {"records_done": total}})

    # ---------------------------------------------------------- partitions

    async def create_partitions(
        self, job_id: str, ranges: list[tuple[int, int]], first_index: int = 0
    ) -> None:
        """Insert the job's partitions, numbered from ``first_index`` (idempotent)."""
        docs = [
            {
                "_id": f"{job_id}:{index}",
                "job_id": job_id,
                "index": index,
                "start": start,
                "end": end,
                "status": PartitionStatus.PENDING.value,
                "attempt": 0,
                "failures": 0,
                "lease_id": None,
                "needed": 0,
            }
            for index, (start, end) in enumerate(ranges, start=first_index)
        ]
        for chunk in range(0, len(docs), 1000):
            try:
                await self.partitions.insert_many(docs[chunk : chunk + 1000], ordered=False)
            except BulkWriteError as exc:
                if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                    raise

    async def claim_pending(self, job_id: str, lease_id: str) -> Doc | None:
        """Claim the lowest pending partition for a new lease."""
        move = PARTITION_MOVES[PartitionEvent.CLAIM]
        return await self.partitions.find_one_and_update(
            {"job_id": job_id, "status": _one_of(move.sources)},
            {"$set": {"status": move.target.value, "lease_id": lease_id}},
            sort=[("index", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    async def partition(self, job_id: str, index: int) -> Doc | None:
        """One partition."""
        return await self.partitions.find_one({"_id": f"{job_id}:{index}"})

    async def move_partition(
        self,
        job_id: str,
        index: int,
        lease_id: str,
        event: PartitionEvent,
        *,
        fields: Doc | None = None,
        inc: Doc | None = None,
    ) -> Doc | None:
        """Move the partition of a given lease by ``event`` if it allows; the doc before."""
        move = PARTITION_MOVES[event]
        update: Doc = {"$set": {"status": move.target.value, **(fields or {})}}
        if inc:
            update["$inc"] = inc
        return await self.partitions.find_one_and_update(
            {"_id": f"{job_id}:{index}", "lease_id": lease_id, "status": _one_of(move.sources)},
            update,
            return_document=ReturnDocument.BEFORE,
        )

    async def move_partitions(self, job_id: str, event: PartitionEvent) -> int:
        """Move every partition of the job that ``event`` allows (no lease is named); how many."""
        move = PARTITION_MOVES[event]
        result = await self.partitions.update_many(
            {"job_id": job_id, "status": _one_of(move.sources)},
            {"$set": {"status": move.target.value}},
        )
        return result.modified_count

    async def reopen_waiting(self, job_id: str) -> int:
        """Partitions denied a lease may ask again (money came back); how many."""
        return await self.move_partitions(job_id, PartitionEvent.REOPEN)

    async def stop_open_partitions(self, job_id: str) -> None:
        """Partitions that never started will not run."""
        await self.move_partitions(job_id, PartitionEvent.JOB_STOP)

    async def note_paused(self, job_id: str, index: int, reason: str, until: datetime) -> None:
        """Show a paused partition on its job (``paused.<index>``: reason and until when)."""
        await self.jobs.update_one(
            {"_id": job_id}, {"$set": {f"paused.{index}": {"reason": reason, "until": until}}}
        )

    async def clear_paused(self, job_id: str, index: int) -> None:
        """The partition is no longer paused."""
        await self.jobs.update_one({"_id": job_id}, {"$unset": {f"paused.{index}": ""}})

    async def paused_due(self, now: datetime) -> list[Doc]:
        """Paused partitions whose pause is over."""
        query = {"status": PartitionStatus.PAUSED.value, "paused_until": {"$lte": now}}
        return [
            d async for d in self.partitions.find(query, {"job_id": 1, "index": 1, "lease_id": 1})
        ]

    async def count(self, job_id: str, statuses: Iterable[PartitionStatus]) -> int:
        """Partitions of a job in any of the given statuses."""
        return await self.partitions.count_documents(
            {"job_id": job_id, "status": _one_of(statuses)}
        )

    async def open_leases(self, job_id: str) -> int:
        """Leases of the job that accounting has not closed yet."""
        return await open_leases(self.db, job_id)

    async def reserving(self, job_id: str) -> list[Doc]:
        """Partitions waiting for accounting's answer."""
        query = {"job_id": job_id, "status": PartitionStatus.RESERVING.value}
        return [d async for d in self.partitions.find(query)]

    async def resync_slots(self, job_id: str, slots: list[str | None]) -> None:
        """Free slots whose lease no partition is using (a crash between steps)."""
        live = {
            d["lease_id"]
            async for d in self.partitions.find(
                {"job_id": job_id, "status": _one_of(IN_FLIGHT)}, {"lease_id": 1}
            )
        }
        for lease_id in slots:
            if lease_id is not None and lease_id not in live:
                await self.give_slot(job_id, lease_id)
