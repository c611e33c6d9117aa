"""Reopening partitions that wait for budget, on the real database: how many moved.

A ``LeaseClosed`` pumps the job only when it reopened a waiting partition
(``PartitionDispatch.lease_closed``), so the count that ``update_many`` reports
must be the partitions that moved, and 0 when none waited.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from palette.devstack.stack import DevStack
from palette.scheduler.repository import SchedulerRepository
from palette.scheduler.states import PartitionStatus

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


@pytest.fixture
async def repo(devstack: DevStack) -> AsyncIterator[SchedulerRepository]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(devstack.mongo_url, tz_aware=True)
    yield SchedulerRepository(client, devstack.mongo_db)
    await client.close()


class TestReopenWaiting:
    async def test_it_counts_the_partitions_it_reopened_and_only_those(
        self, repo: SchedulerRepository
    ) -> None:
        job = f"reopen-{uuid.uuid4().hex[:10]}"  # partitions only: no job document
        await repo.create_partitions(job, [(0, 10), (10, 20), (20, 30), (30, 40)])
        try:
            statuses = [PartitionStatus.WAITING_BUDGET] * 2 + [PartitionStatus.DISPATCHED]
            for index, status in enumerate(statuses):
                await repo.partitions.update_one(
                    {"_id": f"{job}:{index}"}, {"$set": {"status": status.value}}
                )
            assert await repo.reopen_waiting(job) == 2
            assert await repo.reopen_waiting(job) == 0  # none waits any more
            found = {d["index"]: d["status"] async for d in repo.partitions.find({"job_id": job})}
            assert found == {0: "PENDING", 1: "PENDING", 2: "DISPATCHED", 3: "PENDING"}
        finally:
            await repo.partitions.delete_many({"job_id": job})
