"""``QuotaBoard`` on the real database: every generator learns how many hold the quota.

Two boards (two generator processes, as far as ``quota_shares`` can tell) pace
one model with a known quota. Each must learn from the other's document that
it shares the quota (``AimdRate.shared``: the lower recovery target applies),
take half of it, and, once the other withdraws, go back to the whole quota and
to a lone generator's target. The model id is new per test, so the documents
of other tests never count.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from palette.common.quotas import QuotaEntry, QuotaTable
from palette.devstack.stack import DevStack
from palette.generator.quota_shares import QuotaBoard, QuotaShares
from tests.integration.waiting import wait_until_async

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

REGION = "us-east-1"
TPM = 60_000
TARGET = 0.9
INTERVAL = 0.2


@pytest.fixture
async def shares(devstack: DevStack) -> AsyncIterator[QuotaShares]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(devstack.mongo_url, tz_aware=True)
    repo = QuotaShares(client[devstack.mongo_db])
    await repo.create_indexes()
    yield repo
    await client.close()


def board(shares: QuotaShares, model: str) -> QuotaBoard:
    table = QuotaTable({REGION: {model: QuotaEntry(tpm=TPM, source="test", as_of="2026-12-07")}})
    return QuotaBoard(table, REGION, TARGET, shares, INTERVAL)


class TestHolderCount:
    async def test_two_generators_learn_that_they_share_then_one_alone_takes_it_all(
        self, shares: QuotaShares
    ) -> None:
        model = f"test.quota-shares-{uuid.uuid4().hex[:8]}"
        first, second = board(shares, model), board(shares, model)
        try:
            a, b = first.pacer(model), second.pacer(model)

            def both_shared() -> bool:
                return a.control.shared and b.control.shared

            await wait_until_async(both_shared, what="both pacers to see two holders")
            # Neither has used the quota yet: max-min fair shares split it equally.
            assert a.share == pytest.approx(TPM * TARGET / 2)
            assert b.share == pytest.approx(TPM * TARGET / 2)
            docs = await shares.holders(REGION, model)
            assert sorted(d["holder"] for d in docs) == sorted([first.holder, second.holder])

            await second.close()  # withdraws its document
            assert [d["holder"] for d in await shares.holders(REGION, model)] == [first.holder]

            def alone() -> bool:
                return not a.control.shared and a.share == pytest.approx(TPM * TARGET)

            await wait_until_async(alone, what="the remaining pacer to hold the quota alone")
        finally:
            await first.close()
            await second.close()
        assert await shares.holders(REGION, model) == []
