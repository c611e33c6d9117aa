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

A claim ends its life in two ways: a claim marked done gets ``done_at``, and a
TTL index drops it ``claim_retention_seconds`` later (MongoDB's TTL monitor and
SecantusDB's sweeper both run every 60 s); and a deleted job's claims are
purged with it (``purge_job``). A redelivery that comes after its claim is gone
meets the lease check instead: a closed or purged lease is never spent.

Taking a lapsed claim over names the lost holder (``ClaimHandle.lost_holder``):
nobody knows what it spent, so the attempt spends nothing under that lease and
ends at once (see ``partition.py``). A holder, for its part, starts a model call
only while its claim is certainly its own (``ClaimHandle.valid``: renewed less
than ``ttl - ttl/4`` ago by its own clock), so every call of a holder that is
taken over started before the takeover.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import Any

import structlog
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure, PyMongoError

from palette.common.messages import utcnow

log = structlog.get_logger("palette.generator.claims")

TTL_INDEX = "gen_claims_done_ttl"
INDEX_CONFLICTS = {85, 86}  # IndexOptionsConflict (MongoDB), IndexKeySpecsConflict (SecantusDB)


class Outcome(Enum):
    """What a claim attempt found."""

    ACQUIRED = "acquired"
    HELD = "held"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Attempt:
    """Result of one claim attempt; ``previous`` is the holder of a lapsed claim taken over."""

    outcome: Outcome
    until: datetime | None = None
    previous: str | None = None
    begun: float = 0.0
    """Monotonic time just before the write that took the claim."""


class ClaimHandle:
    """One delivery's claim: its holder token, whom it took over from, whether it still holds.

    Args:
        holder: this delivery's token (also sent with every model call).
        ttl_seconds: the claim's time to live.
        lost_holder: the holder of a lapsed claim this delivery took over, if any.
        since: monotonic time just before the write that took the claim (default: now).
    """

    def __init__(
        self,
        holder: str,
        ttl_seconds: float,
        lost_holder: str | None = None,
        since: float | None = None,
    ) -> None:
        self.holder = holder
        self.lost_holder = lost_holder
        self.taken = False
        self._calls = itertools.count(1)
        self._good_for = ttl_seconds * 3 / 4
        self._valid_until = (time.monotonic() if since is None else since) + self._good_for

    @classmethod
    def unclaimed(cls) -> ClaimHandle:
        """A handle that never lapses (for an attempt run without the claims collection)."""
        return cls(uuid.uuid4().hex, float("inf"))

    def call_id(self) -> str:
        """A new model call's id: unique, as the holder token is (cheaper than a uuid)."""
        return f"{self.holder}-{next(self._calls)}"

    def renewed(self, started: float) -> None:
        """A renewal that started at monotonic time ``started`` was written."""
        self._valid_until = max(self._valid_until, started + self._good_for)

    def valid(self) -> bool:
        """Whether a model call may start: the claim is certainly still this holder's."""
        return not self.taken and time.monotonic() < self._valid_until


class Claims:
    """Claims on leases; each delivery claims with a holder token of its own."""

    def __init__(
        self,
        db: AsyncDatabase[dict[str, Any]],
        ttl_seconds: float,
        retention_seconds: float = 86_400.0,
    ) -> None:
        self._db = db
        self._claims = db["claims"]
        self.ttl = timedelta(seconds=ttl_seconds)
        self.retention_seconds = int(retention_seconds)

    async def create_indexes(self) -> None:
        """The TTL index on ``done_at`` and the index of a job's claims (failures are logged).

        A TTL index made with another retention is changed in place (``collMod``).
        """
        retention = self.retention_seconds
        try:
            await self._claims.create_index("job_id", name="gen_claims_job")
            try:
                await self._claims.create_index(
                    [("done_at", ASCENDING)], name=TTL_INDEX, expireAfterSeconds=retention
                )
            except OperationFailure as exc:
                if exc.code not in INDEX_CONFLICTS:
                    raise
                await self._db.command(
                    "collMod",
                    self._claims.name,
                    index={"name": TTL_INDEX, "expireAfterSeconds": retention},
                )
        except PyMongoError as exc:
            log.warning("claim_indexes_not_created", error=str(exc))

    async def purge_job(self, job_id: str) -> int:
        """Delete a deleted job's claims; returns how many there were."""
        result = await self._claims.delete_many({"job_id": job_id})
        return result.deleted_count

    async def try_acquire(self, lease_id: str, holder: str, job_id: str) -> Attempt:
        """Take the claim if it is free or lapsed."""
        begun = time.monotonic()
        now = utcnow()
        until = now + self.ttl
        with contextlib.suppress(DuplicateKeyError):
            await self._claims.insert_one(
                {"_id": lease_id, "job_id": job_id, "holder": holder, "until": until, "done": False}
            )
            return Attempt(Outcome.ACQUIRED, until, begun=begun)
        lapsed = await self._claims.find_one_and_update(
            {"_id": lease_id, "done": False, "until": {"$lt": now}},
            {"$set": {"holder": holder, "until": until}},
            return_document=ReturnDocument.BEFORE,
        )
        if lapsed is not None:
            return Attempt(Outcome.ACQUIRED, until, previous=str(lapsed["holder"]), begun=begun)
        current = await self._claims.find_one({"_id": lease_id})
        if current is None:  # gone in between: try again
            return await self.try_acquire(lease_id, holder, job_id)
        if current.get("done"):
            return Attempt(Outcome.DONE)
        return Attempt(Outcome.HELD, current["until"])

    async def acquire(self, lease_id: str, holder: str, job_id: str) -> Attempt:
        """Wait for the claim: ACQUIRED to work, else this delivery is a duplicate."""
        first = await self.try_acquire(lease_id, holder, job_id)
        if first.outcome is not Outcome.HELD:
            return self._taken(lease_id, first)
        seen = first.until
        while True:
            assert seen is not None
            wait = max(0.05, (seen - utcnow()).total_seconds() + 0.05)
            await asyncio.sleep(min(wait, self.ttl.total_seconds() / 3))
            attempt = await self.try_acquire(lease_id, holder, job_id)
            if attempt.outcome is not Outcome.HELD:
                return self._taken(lease_id, attempt)
            if attempt.until is not None and attempt.until > seen:
                return Attempt(Outcome.HELD)  # renewed: a live generator is working on it

    @staticmethod
    def _taken(lease_id: str, attempt: Attempt) -> Attempt:
        if attempt.previous is not None:
            log.warning("claim_taken_over", lease_id=lease_id, lost_holder=attempt.previous)
        return attempt

    async def renew(self, lease_id: str, holder: str) -> bool:
        """Push the claim's end out by one ttl; False when the claim is no longer ours."""
        result = await self._claims.update_one(
            {"_id": lease_id, "holder": holder}, {"$set": {"until": utcnow() + self.ttl}}
        )
        return result.matched_count == 1

    async def finish(self, lease_id: str, holder: str) -> None:
        """The attempt ended (its end event is published): later deliveries are dropped.

        ``done_at`` starts the claim's retention (the TTL index drops it after).
        """
        await self._claims.update_one(
            {"_id": lease_id, "holder": holder}, {"$set": {"done": True, "done_at": utcnow()}}
        )

    async def release(self, lease_id: str, holder: str) -> None:
        """Give the claim up at once (the message goes back to the queue)."""
        await self._claims.update_one(
            {"_id": lease_id, "holder": holder}, {"$set": {"until": utcnow()}}
        )

    @contextlib.asynccontextmanager
    async def claim(self, lease_id: str, job_id: str) -> AsyncIterator[ClaimHandle | None]:
        """Claim a lease for one delivery; yields None when the delivery is a duplicate.

        While the block runs the claim is renewed in the background (a renewal
        that finds another holder marks the handle taken); it is marked done
        when the block ends normally and released when it raises.
        """
        holder = uuid.uuid4().hex
        attempt = await self.acquire(lease_id, holder, job_id)
        if attempt.outcome is not Outcome.ACQUIRED:
            yield None
            return
        handle = ClaimHandle(holder, self.ttl.total_seconds(), attempt.previous, attempt.begun)

        async def keep() -> None:
            while not handle.taken:
                await asyncio.sleep(self.ttl.total_seconds() / 3)
                begun = time.monotonic()
                try:
                    mine = await self.renew(lease_id, holder)
                except Exception as exc:  # the database is unreachable: try again
                    log.warning("claim_renewal_failed", lease_id=lease_id, error=repr(exc))
                    continue
                if mine:
                    handle.renewed(begun)
                else:
                    handle.taken = True
                    log.warning("claim_lost", lease_id=lease_id)

        task = asyncio.create_task(keep())
        try:
            yield handle
        except BaseException:
            task.cancel()
            await self.release(lease_id, holder)
            raise
        task.cancel()
        await self.finish(lease_id, holder)
