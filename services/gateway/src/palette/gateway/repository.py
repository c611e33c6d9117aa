"""MongoDB access of the gateway.

It writes templates and idempotency keys, inserts jobs and reads ledgers (and,
for ``GET /usage``, accounting's leases and previews).
Documents follow ``docs/internals.md``. Every query of a user's resource
filters on ``owner`` (or ``public`` for templates), so another user's resource
looks exactly like a missing one. With ``cache_seconds``, reads of a job, of a
page of jobs and of a ledger are shared for that long (``readcache.py``); a
job this process inserts and its owner's pages are read fresh afterwards.

Long because it is the gateway's one port to MongoDB (``ports.Repository``):
every read that the shared-read cache serves goes through ``_shared`` here, and
split by collection the pieces would each need the cache, the job inserts this
process made and the final ledgers it keeps.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime
from typing import Any, TypeVar

import structlog
from cachetools import LRUCache
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from palette.common.lease_view import leases_granted
from palette.common.ledger_view import LedgerView, read_ledger, read_ledgers
from palette.common.messages import JobStatus, utcnow
from palette.common.quota_view import QuotaUse, quota_uses
from palette.gateway.ports import Document
from palette.gateway.readcache import ReadCache
from palette.gateway.usage import UsageRecords

log = structlog.get_logger("palette.gateway")
T = TypeVar("T")

TEMPLATES = "templates"
JOBS = "jobs"
IDEMPOTENCY = "idempotency_keys"
PREVIEWS = "previews"  # accounting's, read only
QUOTA_SHARES = "quota_shares"  # the generators', read only
ACTIVE = [JobStatus.QUEUED.value, JobStatus.RUNNING.value]
FINAL_LEDGERS = 10_000


def _visible(owner: str) -> dict[str, Any]:
    return {"$or": [{"owner": owner}, {"public": True}]}


class MongoRepository:
    """The gateway's collections in one database."""

    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        cache_seconds: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._cache = ReadCache(cache_seconds, clock) if cache_seconds > 0 else None
        self._page_generation: dict[str, int] = {}
        self._final: LRUCache[str, LedgerView] = LRUCache(FINAL_LEDGERS)
        """Ledgers of ended jobs, read once (see ``ledgers``)."""
        self._templates = db[TEMPLATES]
        self._jobs = db[JOBS]
        self._keys = db[IDEMPOTENCY]

    async def ping(self) -> None:
        """Raise unless the database answers."""
        await self._db.command("ping")

    async def ensure_indexes(self) -> None:
        """Create the gateway's indexes (idempotent; a failure is logged, not fatal)."""
        specs = [
            (self._templates, [("template_id", ASCENDING), ("version", DESCENDING)], "gw_tpl_ver"),
            (self._jobs, [("submit_published", ASCENDING), ("created_at", ASCENDING)], "gw_outbox"),
            (self._jobs, [("owner", ASCENDING), ("created_at", DESCENDING)], "gw_owner_created"),
            (self._jobs, [("template_id", ASCENDING), ("status", ASCENDING)], "gw_tpl_jobs"),
            (self._keys, [("job_id", ASCENDING)], "gw_idem_job"),
        ]
        for collection, keys, name in specs:
            try:
                await collection.create_index(keys, name=name)
            except PyMongoError as exc:
                log.warning("index_not_created", index=name, error=str(exc))

    # ---------------------------------------------------------- templates

    async def insert_template(self, doc: Document) -> None:
        """Insert one template version (``_id`` is ``<template_id>:<version>``).

        Raises:
            DuplicateKeyError: the version exists (a concurrent update took it).
        """
        await self._templates.insert_one(doc)

    async def find_template(
        self, template_id: str, owner: str, version: int | None = None
    ) -> Document | None:
        """A version (latest when None) the owner may use: their own or a public one."""
        query: dict[str, Any] = {"template_id": template_id, **_visible(owner)}
        if version is not None:
            query["version"] = version
        cursor = self._templates.find(query).sort("version", DESCENDING).limit(1)
        async for doc in cursor:
            return doc
        return None

    async def find_own_template(self, template_id: str, owner: str) -> Document | None:
        """The latest version of a template the owner owns (others' answer None)."""
        cursor = (
            self._templates.find({"template_id": template_id, "owner": owner})
            .sort("version", DESCENDING)
            .limit(1)
        )
        async for doc in cursor:
            return doc
        return None

    async def list_templates(self, owner: str, after: str | None, limit: int) -> list[Document]:
        """The latest visible version of each template, by template id, after ``after``."""
        match: dict[str, Any] = dict(_visible(owner))
        if after is not None:
            match = {"$and": [match, {"template_id": {"$gt": after}}]}
        pipeline: list[dict[str, Any]] = [
            {"$match": match},
            {"$sort": {"template_id": 1, "version": -1}},
            {"$group": {"_id": "$template_id", "doc": {"$first": "$$ROOT"}}},
            {"$replaceRoot": {"newRoot": "$doc"}},
            {"$sort": {"template_id": 1}},
            {"$limit": limit},
        ]
        cursor = await self._templates.aggregate(pipeline)
        return [doc async for doc in cursor]

    async def template_versions(self, template_id: str, owner: str) -> list[Document]:
        """Every version of a template the owner may see, newest first."""
        cursor = self._templates.find(
            {"template_id": template_id, **_visible(owner)},
            {"steps": 0},
        ).sort("version", DESCENDING)
        return [doc async for doc in cursor]

    async def delete_template(self, template_id: str, owner: str) -> int:
        """Delete every version of the owner's template; how many were deleted."""
        result = await self._templates.delete_many({"template_id": template_id, "owner": owner})
        return int(result.deleted_count)

    async def template_in_use(self, template_id: str) -> bool:
        """Whether any queued or running job (of anyone) uses the template."""
        return (
            await self._jobs.count_documents(
                {"template_id": template_id, "status": {"$in": ACTIVE}}, limit=1
            )
        ) > 0

    # --------------------------------------------------------------- jobs

    async def _shared(self, key: tuple[Any, ...], read: Callable[[], Awaitable[T]]) -> T:
        """``read()``, or its result if less than ``cache_seconds`` old (None is never kept)."""
        if self._cache is None:
            return await read()
        return await self._cache.get(key, read, lambda value: value is not None)

    async def insert_job(self, doc: Document) -> None:
        """Insert a new job document (its owner's pages are read fresh afterwards)."""
        await self._jobs.insert_one(doc)
        owner = str(doc.get("owner"))
        self._page_generation[owner] = self._page_generation.get(owner, 0) + 1

    async def find_job(self, job_id: str, owner: str, *, fresh: bool = False) -> Document | None:
        """The owner's job, or None (also for another user's job).

        Found by ``_id`` alone, the owner compared here: SecantusDB answers an
        ``_id`` query from its index but scans for ``_id`` and ``owner`` together
        (1.5 ms of its CPU instead of 0.55 ms per read, measured). ``fresh``
        reads the database even when a read of a moment ago is kept (and keeps
        this one instead).
        """
        if fresh and self._cache is not None:
            self._cache.forget(("job", job_id))
        job = await self._shared(("job", job_id), lambda: self._jobs.find_one({"_id": job_id}))
        return dict(job) if job is not None and job.get("owner") == owner else None

    async def list_jobs(
        self,
        owner: str,
        statuses: list[str],
        before: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Document]:
        """The owner's jobs, newest first, strictly after the cursor position ``before``.

        The documents are the shared read's own, handed to every request for a
        moment (``view_memo.py`` builds their views once): read only.
        """
        generation = self._page_generation.get(owner, 0)
        key = ("page", owner, generation, tuple(statuses), before, limit)
        page = await self._shared(key, lambda: self._list_jobs(owner, statuses, before, limit))
        return list(page)

    async def _list_jobs(
        self,
        owner: str,
        statuses: list[str],
        before: tuple[datetime, str] | None,
        limit: int,
    ) -> list[Document]:
        query: dict[str, Any] = {"owner": owner}
        if statuses:
            query["status"] = {"$in": statuses}
        if before is not None:
            created, job_id = before
            query["$or"] = [
                {"created_at": {"$lt": created}},
                {"created_at": created, "_id": {"$lt": job_id}},
            ]
        cursor = (
            self._jobs.find(query, {"template": 0})
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return [doc async for doc in cursor]

    async def count_active_jobs(self, owner: str) -> int:
        """How many of the owner's jobs are queued or running."""
        return await self._jobs.count_documents({"owner": owner, "status": {"$in": ACTIVE}})

    async def ledger(self, job_id: str, budget: int) -> LedgerView:
        """The live ledger of a job (accounting's documents, read only)."""
        return await self._shared(("ledger", job_id), lambda: read_ledger(self._db, job_id, budget))

    async def quota_uses(self, models: list[str], region: str) -> list[QuotaUse]:
        """How the generators share these models' quotas now (the generators' documents)."""

        async def read() -> list[QuotaUse]:
            query = {"region": region, "model": {"$in": models}, "expires": {"$gt": utcnow()}}
            return quota_uses([doc async for doc in self._db[QUOTA_SHARES].find(query)])

        return await self._shared(("quotas", region, tuple(sorted(models))), read)

    async def ledgers(
        self, budgets: dict[str, int], final: Collection[str] = ()
    ) -> dict[str, LedgerView]:
        """The live ledgers of several jobs (job id -> budget), in two queries at most.

        A page's ledgers are shared as one read (refreshed ahead like every
        shared read): were they shared one by one, a request would wait for the
        database each time the page's entries lapse, every ``cache_seconds``.
        With the shared reads on, the ledgers of jobs in ``final`` (ended: the
        scheduler finishes a job only once none of its leases is open, so its
        ledger no longer changes) are read once and kept, and a single job
        still running shares the read of its own ledger (``GET /jobs/{id}``):
        a page of ended jobs and one running costs no ledger read of its own.
        """
        if self._cache is None:
            return await read_ledgers(self._db, budgets)
        views = {job: self._final[job] for job in budgets if job in final and job in self._final}
        ended = {
            job: budget for job, budget in budgets.items() if job in final and job not in views
        }
        live = {job: budget for job, budget in budgets.items() if job not in final}
        if ended:
            # never a read shared from before they ended: a key of its own
            key = ("final-ledgers", tuple(sorted(ended.items())))
            for job, view in (
                await self._shared(key, lambda: read_ledgers(self._db, ended))
            ).items():
                self._final[job] = views[job] = view
        if len(live) == 1:
            ((job, budget),) = live.items()
            views[job] = await self.ledger(job, budget)
        elif live:
            key = ("ledgers", tuple(sorted(live.items())))
            views |= await self._shared(key, lambda: read_ledgers(self._db, live))
        return {job: views[job] for job in budgets}

    async def usage(self, owner: str, start: datetime, end: datetime) -> UsageRecords:
        """The owner's leases granted and previews reserved in ``[start, end)`` (whole days)."""
        templates = {
            str(doc["_id"]): doc.get("template_id")
            async for doc in self._jobs.find(
                {"owner": owner, "created_at": {"$lt": end}}, {"template_id": 1}
            )
        }
        previews = self._db[PREVIEWS].find(
            {
                "owner": owner,
                "day": {"$gte": start.date().isoformat(), "$lt": end.date().isoformat()},
            },
            {"day": 1, "template_id": 1, "state": 1, "amount": 1, "usage": 1, "unreconciled": 1},
        )
        return UsageRecords(
            templates,
            await leases_granted(self._db, templates, start, end) if templates else [],
            [doc async for doc in previews],
        )

    async def mark_submitted(self, job_id: str) -> None:
        """Set the outbox flag once SubmitJob is published."""
        await self._jobs.update_one(
            {"_id": job_id, "submit_published": False}, {"$set": {"submit_published": True}}
        )

    async def unsubmitted_jobs(self, created_before: datetime, limit: int) -> list[Document]:
        """Jobs older than ``created_before`` whose SubmitJob is not known to be published."""
        cursor = (
            self._jobs.find({"submit_published": False, "created_at": {"$lt": created_before}})
            .sort("created_at", ASCENDING)
            .limit(limit)
        )
        return [doc async for doc in cursor]

    async def fail_unsubmittable(self, job_id: str, reason: str, now: datetime) -> bool:
        """Fail a queued job whose SubmitJob cannot be built (the outbox never reads it again).

        Only a job still queued and unpublished moves: the scheduler has never
        had it, so the gateway is its only writer. ``submit_published`` becomes
        null: never to be published.
        """
        result = await self._jobs.update_one(
            {"_id": job_id, "status": JobStatus.QUEUED.value, "submit_published": False},
            {
                "$set": {
                    "status": JobStatus.FAILED.value,
                    "error": reason,
                    "finished_at": now,
                    "updated_at": now,
                    "submit_published": None,
                }
            },
        )
        return result.modified_count == 1

    # ---------------------------------------------------- idempotency keys

    async def claim_key(
        self, owner: str, key: str, job_id: str, fingerprint: str, now: datetime
    ) -> Document | None:
        """Claim an ``Idempotency-Key`` for ``job_id``; the earlier claim if it was taken."""
        doc = {
            "_id": f"{owner}\n{key}",
            "owner": owner,
            "job_id": job_id,
            "fingerprint": fingerprint,
            "created_at": now,
        }
        try:
            await self._keys.insert_one(doc)
        except DuplicateKeyError:
            return await self._keys.find_one({"_id": doc["_id"]})
        return None

    async def find_key(self, owner: str, key: str) -> Document | None:
        """The claim of an ``Idempotency-Key``, or None."""
        return await self._keys.find_one({"_id": f"{owner}\n{key}"})

    async def forget_keys(self, job_id: str) -> None:
        """Drop the idempotency keys that led to a job (it is being deleted)."""
        await self._keys.delete_many({"job_id": job_id})
