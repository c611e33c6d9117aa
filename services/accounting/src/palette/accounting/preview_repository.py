"""MongoDB access of preview spend: one budget document per owner and day, one per preview.

Like the job ledger, without transactions: every change is one atomic update of
one document carrying its own idempotency marker, so a redelivered message has
no second effect and a crash between two steps is completed by the redelivery.

- ``preview_budgets`` (``_id="<owner>/<day>"``): ``committed`` (spent plus
  reserved), ``spent``, ``pending.<preview>`` (what a running preview holds:
  the marker of its reservation) and ``settled.<preview>`` (what it cost: the
  marker of its settlement). A reservation is one conditional update:
  ``committed <= limit - amount`` and neither marker present.
- ``previews`` (``_id=preview_id``): ``owner``, ``day``, ``template_id``,
  ``amount`` (reserved), ``state`` (``reserved`` -> ``settled``, or
  ``reserved`` -> ``expired`` -> ``settled`` when a settlement comes late),
  ``expires_at``, and once settled ``usage`` (per model), ``cost`` and
  ``unreconciled`` (the part charged at a worst case).

A settlement releases the reservation and adds the cost in one update, whether
the reservation is still pending or was released by its expiry meanwhile; an
expiry releases only a reservation still pending.
"""

from __future__ import annotations

import contextlib
from datetime import date, datetime
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient, ReturnDocument
from pymongo.errors import DuplicateKeyError

from palette.accounting.previews import Charge, Standing, budget_key, day_of, expiry, standing
from palette.common.keys import mongo_field
from palette.common.messages import PreviewBudgetResult, PreviewCompleted, ReservePreviewBudget

Doc = dict[str, Any]

BUDGETS = "preview_budgets"
PREVIEWS = "previews"


def _result(
    msg: ReservePreviewBudget, day: date, now_standing: Standing, granted: bool, reason: str | None
) -> PreviewBudgetResult:
    return PreviewBudgetResult(
        message_id=f"{msg.message_id}.reply"[:200],
        preview_id=msg.preview_id,
        granted=granted,
        day=day,
        limit=now_standing.limit,
        spent=now_standing.spent,
        reserved=now_standing.reserved,
        available=now_standing.available,
        reason=reason,
    )


class PreviewLedger:
    """Accounting's preview collections."""

    def __init__(self, client: AsyncMongoClient[Doc], database: str) -> None:
        db = client[database]
        self.budgets = db[BUDGETS]
        self.previews = db[PREVIEWS]

    async def create_indexes(self) -> None:
        """Indexes of the owner's usage reads and of the expiry sweep."""
        await self.previews.create_index([("owner", ASCENDING), ("day", ASCENDING)])
        await self.previews.create_index([("state", ASCENDING), ("expires_at", ASCENDING)])

    async def _ensure_budget(self, owner: str, day: date, now: datetime) -> None:
        fresh = {
            "owner": owner,
            "day": day.isoformat(),
            "committed": 0,
            "spent": 0,
            "pending": {},
            "settled": {},
            "created_at": now,
        }
        with contextlib.suppress(DuplicateKeyError):  # a concurrent first use made it
            await self.budgets.update_one(
                {"_id": budget_key(owner, day)}, {"$setOnInsert": fresh}, upsert=True
            )

    async def reserve(
        self, msg: ReservePreviewBudget, now: datetime, hold_seconds: float
    ) -> PreviewBudgetResult:
        """Reserve ``msg.amount`` for the preview if it fits in the day's budget; the answer."""
        field = mongo_field(msg.preview_id)
        known = await self.previews.find_one({"_id": msg.preview_id}, {"day": 1})
        day = date.fromisoformat(known["day"]) if known else day_of(now)
        key = budget_key(msg.owner, day)
        await self._ensure_budget(msg.owner, day, now)
        if known is not None:  # granted before: answer the same
            current = await self.budgets.find_one({"_id": key})
            return _result(msg, day, standing(current, msg.limit), True, None)
        if now >= msg.deadline:
            current = await self.budgets.find_one({"_id": key})
            reason = "the request expired before it was read"
            return _result(msg, day, standing(current, msg.limit), False, reason)
        after = await self.budgets.find_one_and_update(
            {
                "_id": key,
                "committed": {"$lte": msg.limit - msg.amount},
                f"pending.{field}": {"$exists": False},
                f"settled.{field}": {"$exists": False},
            },
            {"$inc": {"committed": msg.amount}, "$set": {f"pending.{field}": msg.amount}},
            return_document=ReturnDocument.AFTER,
        )
        if after is None:
            after = await self.budgets.find_one({"_id": key})
            if after is None or field not in (after.get("pending") or {}):
                return _result(msg, day, standing(after, msg.limit), False, None)
        await self.previews.update_one(
            {"_id": msg.preview_id},
            {
                "$setOnInsert": {
                    "owner": msg.owner,
                    "day": day.isoformat(),
                    "template_id": msg.template_id,
                    "amount": msg.amount,
                    "state": "reserved",
                    "expires_at": expiry(msg.deadline, hold_seconds),
                    "created_at": now,
                }
            },
            upsert=True,
        )
        return _result(msg, day, standing(after, msg.limit), True, None)

    async def settle(self, msg: PreviewCompleted, charge: Charge, now: datetime) -> bool:
        """Charge a preview once and release its reservation; whether this call applied it.

        A preview with no reservation (published by another system) counts on
        the day of ``msg.occurred_at``.
        """
        fields = {
            "usage": charge.usage,
            "cost": charge.cost,
            "unreconciled": charge.unreconciled,
            "settled_at": now,
        }
        day = day_of(msg.occurred_at)
        await self.previews.update_one(
            {"_id": msg.preview_id},
            {
                "$setOnInsert": {
                    "owner": msg.owner,
                    "day": day.isoformat(),
                    "template_id": None,
                    "amount": 0,
                    "state": "settled",
                    "created_at": now,
                    **fields,
                }
            },
            upsert=True,
        )
        doc = await self.previews.find_one_and_update(
            {"_id": msg.preview_id, "state": {"$in": ["reserved", "expired"]}},
            {"$set": {"state": "settled", **fields}},
            return_document=ReturnDocument.AFTER,
        )
        doc = doc or await self.previews.find_one({"_id": msg.preview_id})
        assert doc is not None
        day = date.fromisoformat(doc["day"])
        await self._ensure_budget(str(doc["owner"]), day, now)
        return await self._apply(budget_key(str(doc["owner"]), day), msg.preview_id, doc)

    async def _apply(self, key: str, preview_id: str, doc: Doc) -> bool:
        """Add the settled cost to the day, releasing what the reservation held (once)."""
        field = mongo_field(preview_id)
        cost, amount = int(doc["cost"]), int(doc["amount"])
        mark: Doc = {f"settled.{field}": cost}
        held = await self.budgets.update_one(
            {"_id": key, f"settled.{field}": {"$exists": False}, f"pending.{field}": amount},
            {
                "$set": mark,
                "$unset": {f"pending.{field}": ""},
                "$inc": {"spent": cost, "committed": cost - amount},
            },
        )
        if held.modified_count:
            return True
        released = await self.budgets.update_one(
            {
                "_id": key,
                f"settled.{field}": {"$exists": False},
                f"pending.{field}": {"$exists": False},
            },
            {"$set": mark, "$inc": {"spent": cost, "committed": cost}},
        )
        return released.modified_count == 1

    async def expire_due(self, now: datetime, limit: int = 200) -> list[str]:
        """Release reservations past their expiry that no preview settled; their ids."""
        cursor = self.previews.find(
            {"state": "reserved", "expires_at": {"$lte": now}},
            {"owner": 1, "day": 1, "amount": 1},
        ).limit(limit)
        expired = []
        async for doc in cursor:
            field = mongo_field(str(doc["_id"]))
            day = date.fromisoformat(doc["day"])
            await self.budgets.update_one(
                {"_id": budget_key(str(doc["owner"]), day), f"pending.{field}": {"$exists": True}},
                {"$unset": {f"pending.{field}": ""}, "$inc": {"committed": -int(doc["amount"])}},
            )
            marked = await self.previews.update_one(
                {"_id": doc["_id"], "state": "reserved"},
                {"$set": {"state": "expired", "expired_at": now}},
            )
            if marked.modified_count:
                expired.append(str(doc["_id"]))
        return expired
