"""Settling a part on the real database: one conditional update, the lease read on a miss.

It runs once per part written, so it is as few database requests as it can
be: the lease is read only when the update did not apply (a repeat, a closed
lease, or no such lease).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from palette.accounting.repository import LedgerRepository, UnknownJobError
from palette.devstack.stack import DevStack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

BUDGET = 1_000_000
USAGE = {
    "note": {
        "model_id": "amazon.nova-micro-v1:0",
        "calls": 2,
        "input_tokens": 30,
        "output_tokens": 40,
        "cost": 700,
    }
}


@pytest.fixture
async def client(devstack: DevStack) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(devstack.mongo_url, tz_aware=True)
    yield mongo
    await mongo.close()


@pytest.fixture
async def job_id(
    client: AsyncMongoClient[dict[str, Any]], devstack: DevStack
) -> AsyncIterator[str]:
    """A job document with only its budget (no status: no service ever picks it up)."""
    db = client[devstack.mongo_db]
    job = f"ledger-writes-{uuid.uuid4().hex[:10]}"
    await db["jobs"].insert_one({"_id": job, "budget_picos": BUDGET})
    yield job
    await LedgerRepository(client, devstack.mongo_db).purge_job(job)
    await db["jobs"].delete_one({"_id": job})


class TestSettle:
    async def test_a_part_is_settled_once_and_a_repeat_or_a_closed_lease_adds_nothing(
        self, client: AsyncMongoClient[dict[str, Any]], devstack: DevStack, job_id: str
    ) -> None:
        repo = LedgerRepository(client, devstack.mongo_db)
        lease_id = f"{job_id}-lease"
        granted = await repo.reserve(job_id, 0, lease_id, 10_000, 1_000)
        assert granted.granted == 10_000

        assert await repo.settle("part-1", lease_id, USAGE) == 700
        assert await repo.settle("part-1", lease_id, USAGE) is None  # a redelivery
        doc = await repo.known_lease(lease_id)
        assert (doc["settled"], doc["applied"]) == (700, ["part-1"])
        assert doc["usage"]["note"]["calls"] == 2

        await repo.close(lease_id, USAGE)
        assert await repo.settle("part-2", lease_id, USAGE) is None  # after its closing
        doc = await repo.known_lease(lease_id)
        assert (doc["closed"], doc["settled"], doc["applied"]) == (True, 700, ["part-1"])
        ledger = await repo.ledgers.find_one({"_id": job_id})
        assert ledger is not None
        assert (ledger["spent"], ledger["available"], ledger["pending"]) == (700, BUDGET - 700, {})

    async def test_a_part_of_a_lease_that_does_not_exist_is_refused(
        self, client: AsyncMongoClient[dict[str, Any]], devstack: DevStack
    ) -> None:
        repo = LedgerRepository(client, devstack.mongo_db)
        missing = f"no-such-lease-{uuid.uuid4().hex[:8]}"
        with pytest.raises(UnknownJobError, match=missing):
            await repo.settle("part-1", missing, USAGE)
        assert await repo.leases.find_one({"_id": missing}) is None
