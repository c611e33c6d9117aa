"""Poison messages on every queue (case 9)."""

from __future__ import annotations

import asyncio
import time

import aio_pika
import pytest

from palette.common.topology import ERROR_HEADER, Queues
from tests.faults.conftest import Rig
from tests.faults.harness import submit
from tests.integration.deliveries import drain, wait_dead_lettered
from tests.integration.jobs import publish_to

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

POISON = [b"\xff\xfe not json at all", b'{"job_id": 12, "lease_id": []}', b"[1, 2, 3]", b"null"]
DELIVERY_LIMIT = 5


async def depth(url: str, queue: str) -> int:
    """Messages ready in a queue."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return int(declared.declaration_result.message_count or 0)


@pytest.mark.quick
def test_poison_on_every_queue_is_dead_lettered_and_consumers_go_on(rig: Rig) -> None:
    """Case 9: unparsable and wrong-shape bodies on every route.

    Each reaches its queue's dead-letter queue with the reason, within the
    delivery limit (no handler requeues it forever); every queue is empty
    afterwards; and a job submitted next completes with exact counters.
    """
    group, api = rig.services(generators=1)
    url = rig.stack.rabbitmq_url
    for spec in Queues.all():
        asyncio.run(drain(url, spec.dead_letter_queue))
    routes = sorted({(spec.exchange.name, spec.routing_key) for spec in Queues.all()})
    for exchange, routing_key in routes:
        for number, body in enumerate(POISON):
            asyncio.run(publish_to(url, exchange, routing_key, body, f"poison-{number}"))
    dead = wait_dead_lettered(url, Queues.all(), len(POISON), timeout=60)
    for spec in Queues.all():
        got = dead[spec.name]
        assert sorted(m.body for m in got) == sorted(POISON), spec.name
        for message in got:
            assert str(message.headers[ERROR_HEADER]).startswith("invalid message"), spec.name
            assert message.headers["x-palette-queue"] == spec.name
            assert int(message.headers.get("x-delivery-count") or 0) <= DELIVERY_LIMIT
        assert asyncio.run(depth(url, spec.name)) == 0, f"{spec.name} still holds messages"
    assert all(service.alive() for service in group)
    started = time.monotonic()
    job = submit(api, rig.seeds, 40, "5")
    final = rig.final(job)
    counters = rig.count("poison on every queue, then a job", job, started)
    assert final["status"] == "COMPLETED", final
    counters.assert_zero()
