"""A publish whose channel the broker closes under it is made again once the channel reopens.

When RabbitMQ closes a channel (a consumer acknowledgement timeout closes it with
PRECONDITION_FAILED while a handler still runs), a publish waiting for its
confirm fails with the close reason, although the broker may already have routed
it. The scheduler's claim of a partition was then never followed by its lease
request. ``publish`` waits for the robust channel to reopen and publishes again;
the repeat has the same message id, which every consumer deduplicates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import aio_pika
import pytest
from faststream.rabbit import RabbitQueue

from palette.common import messages as m
from palette.common.broker import declare_topology, make_broker, publish
from palette.common.topology import Queues
from tests.backends import Backend
from tests.conftest import kept_vhost_url, release_queues, vhost_name

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROUNDS = 3


@pytest.fixture(scope="module")
def private_url(test_backend: Backend) -> Iterator[str]:
    """A vhost of this module's own: no service consumes what it publishes."""
    url = kept_vhost_url(test_backend, vhost_name("-publish"), reset=True)
    if url is None:
        pytest.fail("this test needs a virtual host of its own (rabbitmqctl)", pytrace=False)
    yield url
    release_queues(url)


async def close_channel_under(broker: object, name: str) -> str:
    """Make the broker close the broker's channel: redeclare a queue with other arguments."""
    await asyncio.sleep(0)  # after the publish's frames are on their way
    try:
        await broker.declare_queue(RabbitQueue(name, durable=True))  # type: ignore[attr-defined]
    except aio_pika.exceptions.ChannelPreconditionFailed as exc:
        return type(exc).__name__
    return "not closed"


async def reopened(broker: object, name: str) -> None:
    """Wait until the broker's channel is open again (the robust channel reopens it)."""
    queue = RabbitQueue(name, durable=False, auto_delete=True)
    for _ in range(100):
        try:
            await broker.declare_queue(queue)  # type: ignore[attr-defined]
        except aio_pika.exceptions.ChannelInvalidStateError:
            await asyncio.sleep(0.1)
        else:
            return
    raise AssertionError("the channel did not reopen within 10 s")


async def publish_while_the_channel_closes(url: str) -> tuple[list[object], list[str]]:
    broker = make_broker(url)
    await broker.connect()
    outcomes: list[object] = []
    try:
        await declare_topology(broker)
        for n in range(ROUNDS):
            probe = f"publish-retry-probe-{n}"  # a new name: FastStream caches declarations
            await reopened(broker, probe)
            message = m.ReserveBudget(
                message_id=f"reserve-probe-{n}",
                job_id="probe",
                partition=n,
                lease_id=f"probe-{n}",
                amount=1,
                minimum=1,
            )
            outcomes += await asyncio.gather(
                publish(broker, message), close_channel_under(broker, probe), return_exceptions=True
            )
    finally:
        await broker.stop()
    received: list[str] = []
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(Queues.RESERVE_BUDGET.queue().name)
        while (got := await queue.get(fail=False)) is not None:
            received.append(str(got.message_id))
            await got.ack()
    return outcomes, received


def test_a_publish_meeting_a_channel_closed_by_the_broker_is_made_again(private_url: str) -> None:
    outcomes, received = asyncio.run(publish_while_the_channel_closes(private_url))
    publishes, closes = outcomes[0::2], outcomes[1::2]
    assert publishes == [None] * ROUNDS, publishes
    # The broker closed the channel each round while the publish waited for its confirm.
    assert closes == ["ChannelPreconditionFailed"] * ROUNDS
    # Every message arrived; a repeat (the first try was routed before the close) has
    # the same id, which consumers deduplicate.
    assert set(received) == {f"reserve-probe-{n}" for n in range(ROUNDS)}, received
