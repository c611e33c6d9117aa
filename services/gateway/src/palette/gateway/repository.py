"""MongoDB access of the gateway: templates (it writes), jobs (it inserts), ledgers (it reads).

Documents follow ``docs/internals.md`` exactly. Every query of a user's
resource filters on ``owner``, so another user's resource looks missing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from palette.gateway.ports import Document

log = structlog.get_logger("palette.gateway")

TEMPLATES = "templates"
JOBS = "jobs"
LEDGERS = "ledgers"


class MongoRepository:
    """The gateway's collections in one database."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._db = db
        self._templates = db[TEMPLATES]
        self._jobs = db[JOBS]
        self._ledgers = db[LEDGERS]

    async def ping(self) -> None:
        """Raise unless the database answers."""
        await self._db.command("ping")

    async def ensure_indexes(self) -> None:
        """Create the gateway's indexes (idempotent; a failure is logged, not fatal)."""
        specs = [
            (self._templates, [("template_id", ASCENDING), ("version", DESCENDING)], "gw_tpl_ver"),
            (self._jobs, [("submit_published", ASCENDING), ("created_at", ASCENDING)], "gw_outbox"),
            (self._jobs, [("owner", ASCENDING), ("created_at", DESCENDING)], "gw_owner_created"),
        ]
        for collection, keys, name in specs:
            try:
                await collection.create_index(keys, name=name)
            except PyMongoError as exc:
                log.warning("index_not_created", index=name, error=str(exc))

    async def insert_template(self, doc: Document) -> None:
        """Insert one template version (``_id`` is ``<template_id>:<version>``)."""
        await self._templates.insert_one(doc)

    async def find_template(
        self, template_id: str, owner: str, version: int | None = None
    ) -> Document | None:
        """A version (latest when None) the owner may use: their own or a public one."""
        query: dict[str, Any] = {
            "template_id": template_id,
            "$or": [{"owner": owner}, {"public": True}],
        }
        if version is not None:
            query["version"] = version
        cursor = self._templates.find(query).sort("version", DESCENDING).limit(1)
        async for doc in cursor:
            return doc
        return None

    async def insert_job(self, doc: Document) -> None:
        """Insert a new job document."""
        await self._jobs.insert_one(doc)

    async def find_job(self, job_id: str, owner: str) -> Document | None:
        """The owner's job, or None (also for another user's job)."""
        return await self._jobs.find_one({"_id": job_id, "owner": owner})

    async def find_ledger(self, job_id: str) -> Document | None:
        """The accounting ledger of a job, or None."""
        return await self._ledgers.find_one({"_id": job_id})

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
