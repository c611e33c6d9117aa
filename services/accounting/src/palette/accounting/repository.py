"""MongoDB access of accounting: ledgers, leases and applied-message entries.

Every change is one transaction that also inserts the message's entry, so a
redelivered message finds its entry and has no second effect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from palette.accounting import ledger
from palette.common.messages import utcnow

Doc = dict[str, Any]
T = TypeVar("T")


class UnknownJobError(LookupError):
    """A message about a job that has no job document."""


@dataclass(frozen=True, slots=True)
class Reservation:
    """Outcome of a reservation request."""

    granted: int | None
    available: int
    reserved: int


class LedgerRepository:
    """The accounting service's collections."""

    def __init__(self, client: AsyncMongoClient[Doc], database: str) -> None:
        self._client = client
        self._db: AsyncDatabase[Doc] = client[database]
        self.ledgers = self._db["ledgers"]
        self.leases = self._db["leases"]
        self.entries = self._db["ledger_entries"]
        self.jobs = self._db["jobs"]

    async def create_indexes(self) -> None:
        """Indexes of the ledger's queries (and of readers counting open leases)."""
        await self.leases.create_index([("job_id", 1), ("closed", 1)])

    async def ensure_ledger(self, job_id: str) -> Doc:
        """The job's ledger, created from the job's budget on first use."""
        existing = await self.ledgers.find_one({"_id": job_id})
        if existing is not None:
            return existing
        job = await self.jobs.find_one({"_id": job_id}, {"budget_picos": 1})
        if job is None:
            raise UnknownJobError(job_id)
        budget = int(job["budget_picos"])
        doc = await self.ledgers.find_one_and_update(
            {"_id": job_id},
            {
                "$setOnInsert": {
                    "budget": budget,
                    "available": budget,
                    "reserved": 0,
                    "spent": 0,
                    "calls": 0,
                    "input_tokens": 0,
                    "output_tokens": 0,
                    "by_model": {},
                    "by_step": {},
                    "exceeded": False,
                    "created_at": utcnow(),
                }
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert doc is not None
        return doc

    async def _entry(self, session: AsyncClientSession, message_id: str) -> Doc | None:
        return await self.entries.find_one({"_id": message_id}, session=session)

    async def _record(self, session: AsyncClientSession, message_id: str, **fields: Any) -> None:
        await self.entries.insert_one(
            {"_id": message_id, "at": utcnow(), **fields}, session=session
        )

    async def reserve(
        self, message_id: str, job_id: str, partition: int, lease_id: str, amount: int, minimum: int
    ) -> Reservation:
        """Grant a lease with one conditional update, at most once per message."""
        await self.ensure_ledger(job_id)

        async def work(session: AsyncClientSession) -> Reservation:
            done = await self._entry(session, message_id)
            if done is not None:
                return Reservation(done.get("granted"), done["available"], done["reserved"])
            current = await self.ledgers.find_one({"_id": job_id}, session=session)
            assert current is not None
            granted = ledger.grant(current["available"], amount, minimum)
            after = current
            if granted is not None:
                updated = await self.ledgers.find_one_and_update(
                    {"_id": job_id, "available": {"$gte": granted}},
                    {"$inc": {"available": -granted, "reserved": granted}},
                    session=session,
                    return_document=ReturnDocument.AFTER,
                )
                if updated is None:  # raced: the transaction retries
                    raise _Retry
                after = updated
                await self.leases.insert_one(
                    {
                        "_id": lease_id,
                        "job_id": job_id,
                        "partition": partition,
                        "amount": granted,
                        "settled": 0,
                        "closed": False,
                        "usage": {},
                        "created_at": utcnow(),
                    },
                    session=session,
                )
            result = Reservation(granted, after["available"], after["reserved"])
            await self._record(
                session,
                message_id,
                job_id=job_id,
                kind="reserve",
                lease_id=lease_id,
                granted=granted,
                available=result.available,
                reserved=result.reserved,
            )
            return result

        return await self._transact(work)

    async def settle(self, message_id: str, lease_id: str, usage: ledger.UsageMap) -> int | None:
        """Settle a part's usage against its lease; None if already applied."""

        async def work(session: AsyncClientSession) -> int | None:
            if await self._entry(session, message_id) is not None:
                return None
            lease = await self.leases.find_one({"_id": lease_id}, session=session)
            if lease is None:
                raise UnknownJobError(f"lease {lease_id}")
            cost = sum(int(e["cost"]) for e in usage.values())
            applied = 0
            if not lease["closed"] and cost:
                merged = ledger.merge(lease["usage"], usage)
                await self.leases.update_one(
                    {"_id": lease_id, "closed": False},
                    {"$inc": {"settled": cost}, "$set": {"usage": merged}},
                    session=session,
                )
                inc = ledger.aggregate_increments(usage)
                inc.update({"spent": cost, "reserved": -cost})
                await self.ledgers.update_one(
                    {"_id": lease["job_id"]}, {"$inc": inc}, session=session
                )
                applied = cost
            await self._record(
                session,
                message_id,
                job_id=lease["job_id"],
                kind="settle",
                lease_id=lease_id,
                cost=applied,
            )
            return applied

        return await self._transact(work)

    async def lease(self, lease_id: str) -> Doc | None:
        """One lease."""
        return await self.leases.find_one({"_id": lease_id})

    async def close(
        self, message_id: str, lease_id: str, total: ledger.UsageMap
    ) -> ledger.Closing | None:
        """Close a lease at its attempt's total usage; None if already closed."""

        async def work(session: AsyncClientSession) -> ledger.Closing | None:
            if await self._entry(session, message_id) is not None:
                return None
            lease = await self.leases.find_one({"_id": lease_id}, session=session)
            if lease is None:
                raise UnknownJobError(f"lease {lease_id}")
            closing = None
            if not lease["closed"]:
                extra = ledger.difference(total, lease["usage"])
                total_cost = int(lease["settled"]) + sum(int(e["cost"]) for e in extra.values())
                closing = ledger.close_lease(
                    int(lease["amount"]), int(lease["settled"]), total_cost
                )
                await self.leases.update_one(
                    {"_id": lease_id, "closed": False},
                    {
                        "$set": {
                            "closed": True,
                            "usage": ledger.merge(lease["usage"], extra),
                            "settled": total_cost,
                            "closed_at": utcnow(),
                        }
                    },
                    session=session,
                )
                inc = ledger.aggregate_increments(extra)
                inc.update(
                    {
                        "spent": closing.extra_spent,
                        "reserved": -closing.reserved_release,
                        "available": closing.returned,
                    }
                )
                await self.ledgers.update_one(
                    {"_id": lease["job_id"]}, {"$inc": inc}, session=session
                )
            await self._record(
                session, message_id, job_id=lease["job_id"], kind="close", lease_id=lease_id
            )
            return closing

        return await self._transact(work)

    async def mark_exceeded(self, job_id: str) -> bool:
        """Flag the ledger as exceeded; True the first time."""
        result = await self.ledgers.update_one(
            {"_id": job_id, "exceeded": False}, {"$set": {"exceeded": True}}
        )
        return result.modified_count == 1

    async def _transact(self, work: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
        for _ in range(20):
            async with self._client.start_session() as session:
                try:
                    return await session.with_transaction(work)
                except _Retry:
                    continue
                except DuplicateKeyError:
                    # A concurrent delivery of the same message won the race.
                    continue
        raise RuntimeError("ledger transaction kept conflicting")


class _Retry(Exception):
    """Internal: a conditional update lost a race; run the transaction again."""
