"""The end of life of the generator's lease claims, on the real database.

A claim that ends gets ``done_at`` and the TTL index on it drops the claim
``claim_retention_seconds`` later; a deleted job's claims go with it; and a
redelivery that comes after its claim and lease are gone spends nothing.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from palette.devstack.client import GatewayClient
from palette.devstack.stack import DevStack
from palette.generator.claims import TTL_INDEX, Claims
from palette.generator.repository import LeasesRepository
from tests.integration.jobs import finished_job
from tests.integration.waiting import wait_job_deleted, wait_until, wait_until_async

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

TTL_MONITOR_SECONDS = 60  # MongoDB's TTL monitor and SecantusDB's sweeper


@pytest.fixture
async def db(devstack: DevStack) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    """A database of its own on the session's server (its TTL index is this test's)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(devstack.mongo_url, tz_aware=True)
    name = f"claims-{uuid.uuid4().hex[:12]}"
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


async def expire(db: AsyncDatabase[dict[str, Any]], left: int) -> None:
    """Run the server's TTL pass now (SecantusDB), else wait for its monitor, until ``left``."""
    claims = db["claims"]
    with contextlib.suppress(OperationFailure):  # MongoDB: its TTL monitor runs once a minute
        await db.client.admin.command({"secantusAdmin.pruneTtl": 1})

    async def dropped() -> bool:
        return await claims.count_documents({}) <= left

    await wait_until_async(
        dropped,
        what="the TTL index to drop claims",
        timeout=2 * TTL_MONITOR_SECONDS + 10,
        interval=1,
    )


async def ttl_index(db: AsyncDatabase[dict[str, Any]]) -> dict[str, Any]:
    indexes = {i["name"]: i async for i in await db["claims"].list_indexes()}
    return dict(indexes[TTL_INDEX])


class TestClaimRetention:
    async def test_ended_claims_get_a_done_time_and_the_ttl_index_drops_them(
        self, db: AsyncDatabase[dict[str, Any]]
    ) -> None:
        job_id = uuid.uuid4().hex
        kept = Claims(db, ttl_seconds=5, retention_seconds=3600)
        await kept.create_indexes()
        for index in range(3):
            async with kept.claim(f"lease-{index}", job_id) as handle:
                assert handle is not None
        with pytest.raises(RuntimeError):
            async with kept.claim("lease-released", job_id):
                raise RuntimeError("the attempt gave its message back")
        docs = await db["claims"].find().sort("_id").to_list()
        assert [(d["_id"], d["job_id"], d["done"]) for d in docs] == [
            ("lease-0", job_id, True),
            ("lease-1", job_id, True),
            ("lease-2", job_id, True),
            ("lease-released", job_id, False),
        ]
        assert all(d["done_at"] is not None for d in docs[:3])
        assert "done_at" not in docs[3]
        assert (await ttl_index(db))["expireAfterSeconds"] == 3600

        # A shorter retention changes the index in place; then the ended claims go
        # and the one given back (not ended) stays.
        short = Claims(db, ttl_seconds=5, retention_seconds=0)
        await short.create_indexes()
        assert (await ttl_index(db))["expireAfterSeconds"] == 0
        await expire(db, left=1)
        assert await db["claims"].distinct("_id") == ["lease-released"]

    async def test_a_job_s_claims_are_purged_and_a_purged_lease_is_never_spent(
        self, db: AsyncDatabase[dict[str, Any]]
    ) -> None:
        claims = Claims(db, ttl_seconds=5)
        mine, other = uuid.uuid4().hex, uuid.uuid4().hex
        for lease, job in (("a", mine), ("b", mine), ("c", other)):
            async with claims.claim(lease, job):
                pass
        assert await claims.purge_job(mine) == 2
        assert await db["claims"].distinct("_id") == ["c"]
        assert await claims.purge_job(mine) == 0
        leases = LeasesRepository(db)
        await db["leases"].insert_one({"_id": "open", "closed": False})
        assert await leases.is_closed("open") is False
        assert await leases.is_closed("purged-with-its-job") is True


class TestJobDeletion:
    def test_deleting_a_finished_job_deletes_its_claims(
        self, api: GatewayClient, mongo: Any
    ) -> None:
        job = finished_job(api)
        claims = list(mongo["claims"].find({"job_id": job["id"]}))
        assert claims, "the job's partitions left no claims"
        assert all(c["done"] and c["done_at"] is not None for c in claims)
        assert api.http.delete(f"/jobs/{job['id']}").status_code == 202
        wait_job_deleted(api, job["id"], timeout=60)
        wait_until(
            lambda: mongo["claims"].count_documents({"job_id": job["id"]}) == 0,
            what="the job's claims to be purged",
        )
