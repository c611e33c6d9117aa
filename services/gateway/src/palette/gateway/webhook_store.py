"""MongoDB access of ``/webhooks``: the gateway writes ``webhooks``, reads accounting's deliveries.

Every query filters on ``owner``, so another user's webhook or delivery looks
exactly like a missing one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

import structlog
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

log = structlog.get_logger("palette.gateway")
Document = dict[str, Any]

WEBHOOKS = "webhooks"
DELIVERIES = "webhook_deliveries"  # accounting's, read only


class WebhookStore(Protocol):
    """What ``/webhooks`` reads and writes (see ``MongoWebhookStore``)."""

    async def insert(self, doc: Document) -> None:
        """Insert a new webhook."""

    async def list_for(self, owner: str) -> list[Document]:
        """The owner's webhooks, oldest first."""

    async def count(self, owner: str) -> int:
        """How many webhooks the owner has."""

    async def find(self, webhook_id: str, owner: str) -> Document | None:
        """The owner's webhook, or None."""

    async def delete(self, webhook_id: str, owner: str) -> bool:
        """Delete the owner's webhook; False when there was none."""

    async def deliveries(
        self, webhook_id: str, owner: str, before: tuple[datetime, str] | None, limit: int
    ) -> list[Document]:
        """The webhook's deliveries, newest first, after a cursor position."""

    async def delivery(self, webhook_id: str, owner: str, event_id: str) -> Document | None:
        """One delivery of the owner's webhook, or None."""


class MongoWebhookStore:
    """``WebhookStore`` on MongoDB."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self._webhooks = db[WEBHOOKS]
        self._deliveries = db[DELIVERIES]

    async def ensure_indexes(self) -> None:
        """The owner's list (accounting indexes its deliveries); a failure is logged, not fatal."""
        try:
            await self._webhooks.create_index(
                [("owner", ASCENDING), ("created_at", ASCENDING)], name="gw_webhooks_owner"
            )
        except PyMongoError as exc:
            log.warning("index_not_created", index="gw_webhooks_owner", error=str(exc))

    async def insert(self, doc: Document) -> None:
        """Insert a new webhook."""
        await self._webhooks.insert_one(doc)

    async def list_for(self, owner: str) -> list[Document]:
        """The owner's webhooks, oldest first."""
        cursor = self._webhooks.find({"owner": owner}).sort([("created_at", 1), ("_id", 1)])
        return [doc async for doc in cursor]

    async def count(self, owner: str) -> int:
        """How many webhooks the owner has."""
        return await self._webhooks.count_documents({"owner": owner})

    async def find(self, webhook_id: str, owner: str) -> Document | None:
        """The owner's webhook, or None."""
        return await self._webhooks.find_one({"_id": webhook_id, "owner": owner})

    async def delete(self, webhook_id: str, owner: str) -> bool:
        """Delete the owner's webhook; its pending deliveries then fail when due."""
        result = await self._webhooks.delete_one({"_id": webhook_id, "owner": owner})
        return result.deleted_count == 1

    async def deliveries(
        self, webhook_id: str, owner: str, before: tuple[datetime, str] | None, limit: int
    ) -> list[Document]:
        """The webhook's deliveries, newest first, after a cursor position."""
        query: Document = {"webhook_id": webhook_id, "owner": owner}
        if before is not None:
            created, last_id = before
            query["$or"] = [
                {"created_at": {"$lt": created}},
                {"created_at": created, "_id": {"$lt": last_id}},
            ]
        cursor = (
            self._deliveries.find(query)
            .sort([("created_at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return [doc async for doc in cursor]

    async def delivery(self, webhook_id: str, owner: str, event_id: str) -> Document | None:
        """One delivery of the owner's webhook, or None."""
        return await self._deliveries.find_one({"_id": f"{webhook_id}:{event_id}", "owner": owner})
