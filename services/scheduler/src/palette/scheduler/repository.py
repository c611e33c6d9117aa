"""MongoDB access of the scheduler: job state, partitions and progress.

Job status moves only by conditional updates (``status`` in the filter), so
two deliveries or two scheduler processes cannot move a job twice.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import BulkWriteError, DuplicateKeyError

from palette.common.messages import JobStatus, utcnow

Doc = dict[str, Any]
T = TypeVar("T")

ACTIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
IN_FLIGHT = ("RESERVING", "DISPATCHED")


class SchedulerRepository:
    """The scheduler's view of ``jobs``, ``partitions`` and ``parts``."""

    def __init__(self, client: AsyncMongoClient[Doc], database: str) -> None:
        self._client = client
        db = client[database]
        self.jobs = db["jobs"]
        self.partitions = db["partitions"]
        self.parts = db["parts"]
        self.leases = db["leases"]  # accounting's; read here, never written

    async def create_indexes(self) -> None:
        """Indexes the scheduler's queries use."""
        await self.partitions.create_index([("job_id", ASCENDING), ("status", ASCENDING)])
        await self.jobs.create_index([("status", ASCENDING)])

    async def transact(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        """Run ``work`` in a transaction (retried on transient errors)."""
        async with self._client.start_session() as session:
            return await session.with_transaction(work)

    # ---------------------------------------------------------------- jobs

    async def job(self, job_id: str) -> Doc | None:
        """The job document."""
        return await self.jobs.find_one({"_id": job_id})

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

    async def move(
        self, job_id: str, from_: Iterable[str], to: JobStatus, **fields: Any
    ) -> Doc | None:
        """Move a job's status conditionally; the document before, or None."""
        now = utcnow()
        return await self.jobs.find_one_and_update(
            {"_id": job_id, "status": {"$in": list(from_)}},
            {"$set": {"status": to.value, "updated_at": now, **fields}},
            return_document=ReturnDocument.BEFORE,
        )

    async def set_job(self, job_id: str, filter_: Doc, fields: Doc) -> bool:
        """Conditionally set fields of a job; True if it matched."""
        result = await self.jobs.update_one({"_id": job_id, **filter_}, {"$set": fields})
        return result.matched_count == 1

    async def take_slot(self, job_id: str, window: int) -> bool:
        """Take one of the job's ``window`` in-flight slots."""
        result = await self.jobs.update_one(
            {"_id": job_id, "status": JobStatus.RUNNING.value, "in_flight": {"$lt": window}},
            {"$inc": {"in_flight": 1}},
        )
        return result.modified_count == 1

    async def give_slot(self, job_id: str, session: AsyncClientSession | None = None) -> None:
        """Return an in-flight slot."""
        await self.jobs.update_one({"_id": job_id}, {"$inc": {"in_flight": -1}}, session=session)

    async def jobs_to_resume(self) -> list[Doc]:
        """Running jobs, and stopped jobs whose export is not done."""
        cursor = self.jobs.find(
            {
                "$or": [
                    {"status": JobStatus.RUNNING.value},
                    {
                        "status": {"$nin": list(ACTIVE)},
                        "export.status": {"$ne": "DONE"},
                        "partitions_total": {"$gt": 0},
                    },
                ]
            }
        )
        return [doc async for doc in cursor]

    async def record_part(self, job_id: str, key: str, records: int) -> bool:
        """Count a written part once toward the job's progress."""

        async def work(session: AsyncClientSession) -> bool:
            try:
                await self.parts.insert_one(
                    {"_id": key, "job_id": job_id, "records": records}, session=session
                )
            except DuplicateKeyError:
                return False
            await self.jobs.update_one(
                {"_id": job_id}, {"$inc": {"records_done": records}}, session=session
            )
            return True

        return await self.transact(work)

    # ---------------------------------------------------------- partitions

    async def create_partitions(self, job_id: str, ranges: list[tuple[int, int]]) -> None:
        """Insert the job's partitions (idempotent)."""
        docs = [
            {
                "_id": f"{job_id}:{index}",
                "job_id": job_id,
                "index": index,
                "start": start,
                "end": end,
                "status": "PENDING",
                "attempt": 0,
                "failures": 0,
                "lease_id": None,
                "needed": 0,
            }
            for index, (start, end) in enumerate(ranges)
        ]
        for chunk in range(0, len(docs), 1000):
            try:
                await self.partitions.insert_many(docs[chunk : chunk + 1000], ordered=False)
            except BulkWriteError as exc:
                if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                    raise

    async def claim_pending(self, job_id: str, lease_id: str) -> Doc | None:
        """Claim the lowest pending partition for a new lease."""
        return await self.partitions.find_one_and_update(
            {"job_id": job_id, "status": "PENDING"},
            {"$set": {"status": "RESERVING", "lease_id": lease_id}},
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
        from_: str,
        to: str,
        *,
        release_slot: bool,
        fields: Doc | None = None,
        inc: Doc | None = None,
    ) -> Doc | None:
        """Move a partition of a given lease; release its slot in the same transaction."""

        async def work(session: AsyncClientSession) -> Doc | None:
            update: Doc = {"$set": {"status": to, **(fields or {})}}
            if inc:
                update["$inc"] = inc
            before = await self.partitions.find_one_and_update(
                {"_id": f"{job_id}:{index}", "lease_id": lease_id, "status": from_},
                update,
                session=session,
                return_document=ReturnDocument.BEFORE,
            )
            if before is not None and release_slot:
                await self.give_slot(job_id, session=session)
            return before

        return await self.transact(work)

    async def reopen_waiting(self, job_id: str) -> None:
        """Partitions denied a lease may ask again (money came back)."""
        await self.partitions.update_many(
            {"job_id": job_id, "status": "WAITING_BUDGET"}, {"$set": {"status": "PENDING"}}
        )

    async def stop_open_partitions(self, job_id: str) -> None:
        """Partitions that never started will not run."""
        await self.partitions.update_many(
            {"job_id": job_id, "status": {"$in": ["PENDING", "WAITING_BUDGET"]}},
            {"$set": {"status": "STOPPED"}},
        )

    async def count(self, job_id: str, statuses: Iterable[str], negate: bool = False) -> int:
        """Partitions of a job in (or, negated, not in) the given statuses."""
        op = "$nin" if negate else "$in"
        return await self.partitions.count_documents(
            {"job_id": job_id, "status": {op: list(statuses)}}
        )

    async def open_leases(self, job_id: str) -> int:
        """Leases of the job that accounting has not closed yet."""
        return await self.leases.count_documents({"job_id": job_id, "closed": False})

    async def reserving(self, job_id: str) -> list[Doc]:
        """Partitions waiting for accounting's answer."""
        return [d async for d in self.partitions.find({"job_id": job_id, "status": "RESERVING"})]

    async def resync_slots(self, job_id: str) -> None:
        """Recount the in-flight slots from the partitions (after a restart)."""
        in_flight = await self.count(job_id, IN_FLIGHT)
        await self.jobs.update_one({"_id": job_id}, {"$set": {"in_flight": in_flight}})
