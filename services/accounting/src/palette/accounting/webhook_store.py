"""MongoDB access of the webhook sender: deliveries (written here) and webhooks (read).

The gateway writes ``webhooks``; accounting writes ``webhook_deliveries``.
Every change is one conditional update of one delivery:

- a delivery is made once (``$setOnInsert`` on ``<webhook_id>:<event_id>``), so
  an event announced or delivered twice makes one delivery;
- a process claims a due delivery by moving its ``next_attempt_at`` forward by
  the claim's length and writing its ``claim`` token; if it dies, the delivery
  is due again when the claim lapses;
- an attempt's outcome is written only by the holder of the claim (the attempt
  itself is logged in any case);
- a re-send makes the delivery due now with a new bound, once per request
  (``resends`` holds the request ids).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from palette.accounting.webhook_policy import ATTEMPTS_KEPT, PENDING
from palette.common.job_view import job_owner

Doc = dict[str, Any]

WEBHOOKS = "webhooks"  # the gateway's, read only
DELIVERIES = "webhook_deliveries"
RESENDS_KEPT = 50


class WebhookStore:
    """The webhook collections of one database."""

    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.webhooks = db[WEBHOOKS]
        self.deliveries = db[DELIVERIES]
        self.db = db

    async def create_indexes(self, retention_days: int) -> None:
        """The sender's due query, the gateway's per-webhook list, and the retention TTL."""
        await self.deliveries.create_index(
            [("status", ASCENDING), ("next_attempt_at", ASCENDING)], name="acc_wh_due"
        )
        await self.deliveries.create_index(
            [("webhook_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)],
            name="acc_wh_list",
        )
        await self.deliveries.create_index(
            "created_at", name="acc_wh_ttl", expireAfterSeconds=retention_days * 86400
        )

    async def webhook(self, webhook_id: str) -> Doc | None:
        """One webhook (with its secret), or None when it was deleted."""
        return await self.webhooks.find_one({"_id": webhook_id})

    async def subscribers(self, owner: str, event: str) -> list[Doc]:
        """The owner's webhooks that subscribe to ``event``."""
        return [doc async for doc in self.webhooks.find({"owner": owner, "events": event})]

    async def job_owner(self, job_id: str) -> str | None:
        """The owner of a job, or None when there is no such job."""
        return await job_owner(self.db, job_id)

    async def add(self, delivery: Doc) -> bool:
        """Make a delivery unless it exists; True when it is new."""
        result = await self.deliveries.update_one(
            {"_id": delivery["_id"]}, {"$setOnInsert": delivery}, upsert=True
        )
        return result.upserted_id is not None

    async def resend(
        self, delivery_id: str, owner: str, request_id: str, now: datetime, give_up_at: datetime
    ) -> bool:
        """Make the owner's delivery due now as a new series of attempts (once per request id)."""
        result = await self.deliveries.update_one(
            {"_id": delivery_id, "owner": owner, "resends": {"$ne": request_id}},
            {
                "$set": {"status": PENDING, "next_attempt_at": now, "give_up_at": give_up_at},
                "$unset": {"claim": ""},
                "$push": {"resends": {"$each": [request_id], "$slice": -RESENDS_KEPT}},
            },
        )
        return result.modified_count == 1

    async def claim(self, now: datetime, hold_seconds: float, token: str) -> Doc | None:
        """Claim the delivery due first, for ``hold_seconds``; None when none is due."""
        return await self.deliveries.find_one_and_update(
            {"status": PENDING, "next_attempt_at": {"$lte": now}},
            {
                "$set": {
                    "next_attempt_at": now + timedelta(seconds=hold_seconds),
                    "claim": token,
                }
            },
            sort=[("next_attempt_at", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )

    async def record(self, delivery_id: str, token: str, attempt: Doc, outcome: Doc) -> bool:
        """Log an attempt and, while the claim is still ``token``'s, set its outcome.

        ``outcome`` holds the fields to set (``status``, ``next_attempt_at``, ...).
        False when the claim was lost (the delivery was re-sent, or the claim
        lapsed and another process took it): the attempt is logged all the same.
        """
        log_it = {"$push": {"attempts": {"$each": [attempt], "$slice": -ATTEMPTS_KEPT}}}
        result = await self.deliveries.update_one(
            {"_id": delivery_id, "claim": token},
            {**log_it, "$inc": {"attempt_count": 1}, "$set": outcome, "$unset": {"claim": ""}},
        )
        if result.modified_count:
            return True
        await self.deliveries.update_one(
            {"_id": delivery_id}, {**log_it, "$inc": {"attempt_count": 1}}
        )
        return False
