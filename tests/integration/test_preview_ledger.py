"""Accounting's preview ledger on the real database: atomic reservations, one settlement, expiry.

The repository is driven directly, with the clock passed in, so a reservation's
expiry is reached without waiting for it; the last test asks the accounting
service itself (its hold is a second in the test session) and waits for it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from palette.accounting.preview_repository import PreviewLedger
from palette.accounting.previews import Charge, budget_key, day_of
from palette.common.messages import PreviewBudgetResult, PreviewCompleted, ReservePreviewBudget
from palette.common.topology import ROUTES
from palette.devstack.services import ServiceGroup
from palette.devstack.stack import DevStack
from tests.integration.test_replies import request as ask
from tests.integration.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

HOLD = 600.0


@pytest.fixture
async def ledger(devstack: DevStack) -> AsyncIterator[PreviewLedger]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(devstack.mongo_url, tz_aware=True)
    repo = PreviewLedger(client, devstack.mongo_db)
    await repo.create_indexes()
    yield repo
    await client.close()


def reserve(owner: str, amount: int, limit: int, now: datetime) -> ReservePreviewBudget:
    return ReservePreviewBudget(
        preview_id=uuid.uuid4().hex,
        owner=owner,
        template_id="t1",
        amount=amount,
        limit=limit,
        deadline=now + timedelta(seconds=60),
    )


def completed(owner: str, pid: str) -> PreviewCompleted:
    return PreviewCompleted(preview_id=pid, owner=owner)


def charge(cost: int) -> Charge:
    return Charge([{"model_id": "m", "calls": 1, "input_tokens": 1, "output_tokens": 1}], cost, 0)


async def budget(ledger: PreviewLedger, owner: str, now: datetime) -> dict[str, Any]:
    doc = await ledger.budgets.find_one({"_id": budget_key(owner, day_of(now))})
    assert doc is not None
    return doc


class TestReservation:
    async def test_concurrent_reservations_never_hold_more_than_the_limit(
        self, ledger: PreviewLedger
    ) -> None:
        owner, now = f"u-{uuid.uuid4().hex[:8]}", datetime.now(UTC)
        answers = await asyncio.gather(
            *(ledger.reserve(reserve(owner, 300, 1000, now), now, HOLD) for _ in range(12))
        )
        assert sum(a.granted for a in answers) == 3
        doc = await budget(ledger, owner, now)
        assert (doc["committed"], doc["spent"], len(doc["pending"])) == (900, 0, 3)
        refused = next(a for a in answers if not a.granted)
        assert (refused.reserved, refused.available) == (900, 100)

    async def test_a_request_delivered_again_is_granted_once(self, ledger: PreviewLedger) -> None:
        owner, now, request = await reserved(ledger)
        assert (await ledger.reserve(request, now, HOLD)).granted
        assert (await budget(ledger, owner, now))["committed"] == 300

    async def test_a_request_read_after_its_deadline_reserves_nothing(
        self, ledger: PreviewLedger
    ) -> None:
        owner, now = f"u-{uuid.uuid4().hex[:8]}", datetime.now(UTC)
        late = await ledger.reserve(reserve(owner, 1, 1000, now), now + timedelta(minutes=2), HOLD)
        assert (late.granted, late.reason) == (False, "the request expired before it was read")
        assert await ledger.previews.count_documents({"owner": owner}) == 0


class TestSettlement:
    async def test_the_cost_replaces_the_reservation_once(self, ledger: PreviewLedger) -> None:
        owner, now, request = await reserved(ledger)
        applied = [
            await ledger.settle(completed(owner, request.preview_id), charge(120), now)
            for _ in range(2)
        ]
        assert applied == [True, False]
        doc = await budget(ledger, owner, now)
        assert (doc["committed"], doc["spent"], doc["pending"]) == (120, 120, {})
        preview = await ledger.previews.find_one({"_id": request.preview_id})
        assert preview is not None
        assert (preview["state"], preview["cost"], preview["template_id"]) == ("settled", 120, "t1")

    async def test_a_preview_without_a_reservation_is_charged_all_the_same(
        self, ledger: PreviewLedger
    ) -> None:
        owner, now = f"u-{uuid.uuid4().hex[:8]}", datetime.now(UTC)
        pid = uuid.uuid4().hex
        assert await ledger.settle(completed(owner, pid), charge(55), now)
        assert not await ledger.settle(completed(owner, pid), charge(55), now)
        doc = await budget(ledger, owner, now)
        assert (doc["committed"], doc["spent"]) == (55, 55)


async def reserved(ledger: PreviewLedger) -> tuple[str, datetime, ReservePreviewBudget]:
    """A fresh owner with one reservation of 300 out of 1000: (owner, now, request)."""
    owner, now = f"u-{uuid.uuid4().hex[:8]}", datetime.now(UTC)
    request = reserve(owner, 300, 1000, now)
    assert (await ledger.reserve(request, now, HOLD)).granted
    return owner, now, request


class TestExpiry:
    async def test_an_unsettled_reservation_is_released_after_its_hold(
        self, ledger: PreviewLedger
    ) -> None:
        owner, now, request = await reserved(ledger)
        before = request.deadline + timedelta(seconds=HOLD - 1)
        assert request.preview_id not in await ledger.expire_due(before)
        after = request.deadline + timedelta(seconds=HOLD)
        assert request.preview_id in await ledger.expire_due(after)
        assert request.preview_id not in await ledger.expire_due(after)
        doc = await budget(ledger, owner, now)
        assert (doc["committed"], doc["pending"]) == (0, {})
        preview = await ledger.previews.find_one({"_id": request.preview_id})
        assert preview is not None
        assert preview["state"] == "expired"

    async def test_a_settlement_after_the_expiry_is_still_charged_once(
        self, ledger: PreviewLedger
    ) -> None:
        owner, now, request = await reserved(ledger)
        await ledger.expire_due(request.deadline + timedelta(seconds=HOLD))
        for _ in range(2):
            await ledger.settle(completed(owner, request.preview_id), charge(80), now)
        doc = await budget(ledger, owner, now)
        assert (doc["committed"], doc["spent"]) == (80, 80)
        preview = await ledger.previews.find_one({"_id": request.preview_id})
        assert preview is not None
        assert (preview["state"], preview["cost"]) == ("settled", 80)


class TestExpiryInTheService:
    def test_a_reservation_no_preview_settles_is_released_by_accounting(
        self, devstack: DevStack, services: ServiceGroup, mongo: Any
    ) -> None:
        owner, now = f"u-{uuid.uuid4().hex[:8]}", datetime.now(UTC)
        request = reserve(owner, 300, 1000, now).model_copy(
            update={"deadline": now + timedelta(seconds=1)}
        )
        exchange, routing_key = ROUTES[ReservePreviewBudget]
        body = request.model_dump_json().encode()
        reply = asyncio.run(
            ask(devstack.rabbitmq_url, exchange.name, routing_key, body, request.message_id)
        )
        assert PreviewBudgetResult.model_validate_json(reply).granted
        key = budget_key(owner, day_of(now))
        assert mongo["preview_budgets"].find_one({"_id": key})["committed"] == 300

        def expired() -> bool:
            doc = mongo["previews"].find_one({"_id": request.preview_id})
            return doc is not None and doc["state"] == "expired"

        wait_until(expired, what="the preview to expire", timeout=30)
        released = mongo["preview_budgets"].find_one({"_id": key})
        assert (released["committed"], released["pending"]) == (0, {})
