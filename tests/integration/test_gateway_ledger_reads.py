"""The gateway's shared ledger reads of a job page, against the real database.

A page's ledgers are one shared read refreshed ahead: past half its lifetime a
request is still answered from it while a new read runs in the background, so
no request waits for the database when the page's ledgers lapse.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from palette.devstack.stack import DevStack
from palette.gateway.repository import MongoRepository
from tests.integration.waiting import wait_until_async
from tests.unit.gateway_fakes import ManualClock

pytestmark = pytest.mark.integration

TTL = 0.6


def ledger(job_id: str, spent: int) -> dict[str, Any]:
    return {"_id": job_id, "budget": 1000, "spent": spent, "available": 1000 - spent}


async def test_a_page_of_ledgers_is_refreshed_ahead_without_waiting(devstack: DevStack) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(devstack.mongo_url)
    db = client[devstack.mongo_db]
    jobs = [f"ledger-read-{uuid.uuid4().hex}" for _ in range(3)]
    budgets = dict.fromkeys(jobs, 1000)
    try:
        await db["ledgers"].insert_many([ledger(job, 10) for job in jobs])
        clock = ManualClock()
        repo = MongoRepository(db, cache_seconds=TTL, clock=clock)
        first = await repo.ledgers(budgets)
        assert [first[job].spent for job in jobs] == [10, 10, 10]

        await db["ledgers"].update_many({"_id": {"$in": jobs}}, {"$set": {"spent": 20}})
        clock.now += TTL * 0.6  # past half the lifetime, still within it (the clock stays)
        kept = await repo.ledgers(budgets)
        assert [kept[job].spent for job in jobs] == [10, 10, 10]  # answered from the shared read

        # The background read lands while the shared read is still live: the new
        # values come without the lifetime running out.

        async def landed() -> bool:
            return [(await repo.ledgers(budgets))[job].spent for job in jobs] == [20, 20, 20]

        await wait_until_async(
            landed, what="the background read to land", timeout=10, interval=0.01
        )
        refreshed = await repo.ledgers(budgets)
        assert [refreshed[job].spent for job in jobs] == [20, 20, 20]
    finally:
        await db["ledgers"].delete_many({"_id": {"$in": jobs}})
        await client.close()


async def test_ledgers_of_ended_jobs_are_read_once_and_a_running_one_shares_its_own(
    devstack: DevStack,
) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(devstack.mongo_url)
    db = client[devstack.mongo_db]
    ended = [f"ledger-ended-{uuid.uuid4().hex}" for _ in range(2)]
    running = f"ledger-running-{uuid.uuid4().hex}"
    budgets = dict.fromkeys([*ended, running], 1000)
    try:
        await db["ledgers"].insert_many([ledger(job, 10) for job in [*ended, running]])
        clock = ManualClock()
        repo = MongoRepository(db, cache_seconds=TTL, clock=clock)
        first = await repo.ledgers(budgets, final=ended)
        assert [first[job].spent for job in budgets] == [10, 10, 10]
        assert first[running] is await repo.ledger(running, 1000)  # the job's own read

        # (an ended job's ledger never changes: this stands for a read that would differ)
        await db["ledgers"].update_many({"_id": {"$in": list(budgets)}}, {"$set": {"spent": 20}})
        clock.now += TTL * 2  # every shared read has lapsed
        later = await repo.ledgers(budgets, final=ended)
        assert [later[job].spent for job in ended] == [10, 10]  # read once, kept
        assert later[running].spent == 20  # read again
    finally:
        await db["ledgers"].delete_many({"_id": {"$in": list(budgets)}})
        await client.close()
