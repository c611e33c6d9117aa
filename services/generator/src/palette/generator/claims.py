"""Exclusive claims on leases: one generator spends a lease at a time.

A ``GeneratePartition`` can arrive twice: a scheduler that crashed after
publishing it republishes it, and RabbitMQ redelivers a message whose consumer's
channel closed (a killed process, or a consumer timeout) while that consumer may
still be running. Two generators spending one lease would spend it twice, so a
generator first claims the lease in the ``claims`` collection (the generator
is its only writer) and renews the claim while it works:

- no claim, or a lapsed one (its holder died): take it and work;
- a live claim that keeps being renewed: another generator is working on it,
  so this delivery is a duplicate and is dropped;
- a claim marked done: the attempt already ended; drop the delivery.

A delivery that meets an unlapsed claim waits until the claim is either
renewed (duplicate) or lapses (its holder died: take over).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

import structlog
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from palette.common.messages import utcnow

log = structlog.get_logger("palette.generator.claims")


class Outcome(Enum):
    """What a claim attempt found."""

    ACQUIRED = "acquired"
    HELD = "held"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Attempt:
    """Result of one claim attempt."""

    outcome: Outcome
    until: datetime | None = None


class Claims:
    """Claims on leases; each delivery claims with a holder token of its own."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], ttl_seconds: float) -> None:
        self._claims = db["claims"]
        self.ttl = timedelta(seconds=ttl_seconds)

    async def try_acquire(self, lease_id: str, holder: str) -> Attempt:
        """Take the claim if it is free or lapsed."""
        now = utcnow()
        until = now + self.ttl
        with contextlib.suppress(DuplicateKeyError):
            await self._claims.insert_one(
                {"_id": lease_id, "holder": holder, "until": until, "done": False}
            )
            return Attempt(Outcome.ACQUIRED, until)
        taken = await self._claims.find_one_and_update(
            {"_id": lease_id, "done": False, "until": {"$lt": now}},
            {"$set": {"holder": holder, "until": until}},
            return_document=ReturnDocument.AFTER,
        )
        if taken is not None:
            return Attempt(Outcome.ACQUIRED, until)
        current = await self._claims.find_one({"_id": lease_id})
        if current is None:  # gone in between: try again
            return await self.try_acquire(lease_id, holder)
        if current.get("done"):
            return Attempt(Outcome.DONE)
        return Attempt(Outcome.HELD, current["until"])

    async def acquire(self, lease_id: str, holder: str) -> bool:
        """Wait for the claim: True to work, False when this delivery is a duplicate."""
        first = await self.try_acquire(lease_id, holder)
        if first.outcome is not Outcome.HELD:
            return first.outcome is Outcome.ACQUIRED
        seen = first.until
        while True:
            assert seen is not None
            wait = max(0.05, (seen - utcnow()).total_seconds() + 0.05)
            await asyncio.sleep(min(wait, self.ttl.total_seconds() / 3))
            attempt = await self.try_acquire(lease_id, holder)
            if attempt.outcome is Outcome.ACQUIRED:
                log.info("claim_taken_over", lease_id=lease_id)
                return True
            if attempt.outcome is Outcome.DONE:
                return False
            if attempt.until is not None and attempt.until > seen:
                return False  # renewed: a live generator is working on it

    async def renew(self, lease_id: str, holder: str) -> None:
        """Push the claim's end out by one ttl."""
        await self._claims.update_one(
            {"_id": lease_id, "holder": holder}, {"$set": {"until": utcnow() + self.ttl}}
        )

    async def finish(self, lease_id: str, holder: str) -> None:
        """The attempt ended (its end event is published): later deliveries are dropped."""
        await self._claims.update_one({"_id": lease_id, "holder": holder}, {"$set": {"done": True}})

    async def release(self, lease_id: str, holder: str) -> None:
        """Give the claim up at once (the message goes back to the queue)."""
        await self._claims.update_one(
            {"_id": lease_id, "holder": holder}, {"$set": {"until": utcnow()}}
        )

    @contextlib.asynccontextmanager
    async def claim(self, lease_id: str) -> AsyncIterator[bool]:
        """Claim a lease for one delivery; yields False when the delivery is a duplicate.

        While the block runs the claim is renewed in the background; it is
        marked done when the block ends normally and released when it raises.
        """
        holder = uuid.uuid4().hex
        if not await self.acquire(lease_id, holder):
            yield False
            return

        async def keep() -> None:
            while True:
                await asyncio.sleep(self.ttl.total_seconds() / 3)
                await self.renew(lease_id, holder)

        task = asyncio.create_task(keep())
        try:
            yield True
        except BaseException:
            task.cancel()
            await self.release(lease_id, holder)
            raise
        task.cancel()
        await self.finish(lease_id, holder)
