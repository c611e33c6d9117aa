"""Sharing each model's quota among the generators: the ``quota_shares`` collection.

Every generator process keeps one ``ModelPacer`` per model id it calls
(``QuotaBoard.pacer``). While it has calls for a model, a task of its own
reads the documents of the model's live holders every ``quota_sync_seconds``,
sets its share to the max-min fair share of ``quota x target`` by demand
(``pacing.fair_shares``), then upserts its own document (its demand, the share
and rate it uses, a heartbeat ``expires``). Two generators that join at the
same moment may each take the whole quota for one interval.
A generator waiting for the bucket asks for all it can get; one that is not
asks for what it used lately plus a quarter. When it has had no call for the
model for ``QUOTA_IDLE_SECONDS``, it deletes its document and the task ends;
a killed generator's document stops counting at ``expires`` (readers filter on
it) and the TTL index drops it later. No call waits for this I/O except a
known model's very first one in a process (it waits for its first share).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
import uuid
from datetime import timedelta
from typing import Any

import structlog
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from palette.common.messages import utcnow
from palette.common.quotas import QuotaTable
from palette.generator import metrics
from palette.generator.pacing import fair_shares
from palette.generator.quota_pacer import ModelPacer

log = structlog.get_logger("palette.generator.quotas")

QUOTA_SHARES = "quota_shares"
TTL_INDEX = "gen_quota_shares_ttl"
QUOTA_IDLE_SECONDS = 5.0
EXPIRY_INTERVALS = 3
SHARE_LOGGED_CHANGE = 0.05
"""A share that moves by more than this fraction is logged (``quota_share``)."""
"""A document counts for this many sync intervals after its last heartbeat."""


def holder_id() -> str:
    """This process's name among the generators: host, pid and a random tail."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class QuotaShares:
    """The generator's access to ``quota_shares`` (one document per region, model, holder)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.collection = db[QUOTA_SHARES]

    async def create_indexes(self) -> None:
        """The TTL index on ``expires`` and the index of a model's holders."""
        await self.collection.create_index(
            [("expires", ASCENDING)], name=TTL_INDEX, expireAfterSeconds=0
        )
        await self.collection.create_index([("region", ASCENDING), ("model", ASCENDING)])

    async def holders(self, region: str, model: str) -> list[dict[str, Any]]:
        """Every live holder's document of the model."""
        query = {"region": region, "model": model, "expires": {"$gt": utcnow()}}
        return [d async for d in self.collection.find(query)]

    async def upsert(self, doc: dict[str, Any]) -> None:
        """Write this holder's document."""
        await self.collection.update_one({"_id": doc["_id"]}, {"$set": doc}, upsert=True)

    async def withdraw(self, doc_id: str) -> None:
        """Delete this holder's document (it has no calls for the model any more)."""
        await self.collection.delete_one({"_id": doc_id})


class QuotaBoard:
    """Every model's pacer in this process, and the tasks that keep their shares.

    Args:
        table: the quota table (None: every model is unknown, paced by throttles only).
        region: the Region of the quotas (the generator's AWS region).
        target: the fraction of a quota the generators aim to use.
        shares: the collection (None: this generator alone has the whole quota).
        interval: seconds between two syncs of a model's share.
    """

    def __init__(
        self,
        table: QuotaTable | None,
        region: str,
        target: float,
        shares: QuotaShares | None,
        interval: float,
    ) -> None:
        self.table = table
        self.region = region
        self.target = target
        self.shares = shares
        self.interval = interval
        self.holder = holder_id()
        self._pacers: dict[str, ModelPacer] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def pacer(self, model_id: str) -> ModelPacer:
        """The model's pacer, its share kept up to date while it has calls."""
        pacer = self._pacers.get(model_id)
        if pacer is None:
            pacer = self._pacers[model_id] = self._new_pacer(model_id)
        if self.shares is not None and model_id not in self._tasks:
            self._tasks[model_id] = asyncio.get_running_loop().create_task(
                self._sync(model_id, pacer)
            )
        return pacer

    def _new_pacer(self, model_id: str) -> ModelPacer:
        entry = self.table.quota(model_id, self.region) if self.table is not None else None
        burndown = self.table.output_burndown(model_id, self.region) if self.table else 1
        pacer = ModelPacer(
            model_id,
            None if entry is None else float(entry.tpm),
            None if entry is None or entry.rpm is None else float(entry.rpm),
            burndown,
            self.target,
        )
        if entry is not None and self.shares is None:
            pacer.set_share(entry.tpm * self.target)
        return pacer

    def _doc(self, model_id: str, pacer: ModelPacer, now: float) -> dict[str, Any]:
        return {
            "_id": f"{self.region}/{model_id}/{self.holder}",
            "region": self.region,
            "model": model_id,
            "holder": self.holder,
            "quota": pacer.quota,
            "demand": pacer.demand(now, self.interval),
            "share": pacer.share,
            "rate": pacer.rate,
            "used": round(pacer.used_per_minute(now), 1),
            "factor": pacer.control.factor,
            "waiting": pacer.waiting,
            "throttles": pacer.throttles,
            "waited_seconds": round(pacer.waited_seconds, 3),
            "updated_at": utcnow(),
            "expires": utcnow() + timedelta(seconds=self.interval * EXPIRY_INTERVALS),
        }

    async def _sync(self, model_id: str, pacer: ModelPacer) -> None:
        """Keep the model's share while it has calls; withdraw when idle."""
        assert self.shares is not None
        doc_id = f"{self.region}/{model_id}/{self.holder}"
        try:
            while True:
                now = time.monotonic()
                if now - pacer.last_take > QUOTA_IDLE_SECONDS and not pacer.waiting:
                    break
                await self._sync_once(model_id, pacer, now)
                metrics.quota_state(model_id, pacer)
                await asyncio.sleep(self.interval)
        finally:
            self._tasks.pop(model_id, None)
            with contextlib.suppress(PyMongoError, asyncio.CancelledError):
                await asyncio.shield(self.shares.withdraw(doc_id))

    async def _sync_once(self, model_id: str, pacer: ModelPacer, now: float) -> None:
        """Read the model's holders, take this generator's fair share, then write it."""
        assert self.shares is not None
        try:
            docs = await self.shares.holders(self.region, model_id)
            if pacer.quota is not None:
                demands = {str(d["holder"]): d.get("demand") for d in docs}
                demands[self.holder] = pacer.demand(now, self.interval)
                share = fair_shares(pacer.quota * self.target, demands)[self.holder]
                self._log_share(model_id, pacer, share, len(demands))
                pacer.set_share(share, len(demands))
            await self.shares.upsert(self._doc(model_id, pacer, now))
        except PyMongoError as exc:
            log.warning("quota_share_unsynced", model=model_id, error=str(exc))
            if not pacer.ready and pacer.quota is not None:
                pacer.set_share(pacer.quota * self.target)  # alone, as far as it knows

    @staticmethod
    def _log_share(model_id: str, pacer: ModelPacer, share: float, holders: int) -> None:
        previous = pacer.share
        if (
            pacer.ready
            and previous is not None
            and abs(share - previous) <= (SHARE_LOGGED_CHANGE * previous)
        ):
            return
        log.info(
            "quota_share",
            model=model_id,
            share=round(share),
            holders=holders,
            rate=None if pacer.rate is None else round(pacer.rate),
        )

    async def close(self) -> None:
        """Stop the sync tasks (each withdraws its document)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
