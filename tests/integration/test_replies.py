"""Messages that carry a reply-to address: handled once, answered, never requeued by the reply.

Any system may publish a command with a ``reply_to`` (an RPC client does, on
RabbitMQ's direct reply-to); FastStream then publishes the handler's return
value there. The reply must not be what fails the handling: a mandatory
publish to a direct reply-to address is returned ``NO_ROUTE`` even when it is
delivered. The preview, the request the gateway itself makes, is tested in
test_gateway_preview.py.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aio_pika
import pytest

from palette.common.topology import ROUTES, Queues
from palette.devstack.services import ServiceGroup
from palette.devstack.stack import DevStack
from tests.integration.deliveries import wait_settled
from tests.integration.jobs import command, example_job
from tests.integration.waiting import wait_job_ended

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


async def request(url: str, exchange: str, routing_key: str, body: bytes, mid: str) -> bytes:
    """Publish like an RPC client of another system, and wait for the reply."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        replies = await channel.get_queue(DIRECT_REPLY_TO, ensure=False)
        answer: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            if not answer.done():
                answer.set_result(message.body)

        await replies.consume(on_reply, no_ack=True)
        target = await channel.get_exchange(exchange)
        await target.publish(
            command(body, mid, reply_to=DIRECT_REPLY_TO), routing_key=routing_key, mandatory=True
        )
        return await asyncio.wait_for(answer, 60)


class TestReplyTo:
    def test_a_command_sent_with_a_reply_to_address_is_handled_once_and_answered(
        self, devstack: DevStack, services: ServiceGroup, mongo: Any, s3: Any
    ) -> None:
        body = example_job(devstack, s3, 5, "1")
        exchange, routing_key = ROUTES[Queues.SUBMIT_JOB.message]
        url = devstack.rabbitmq_url
        reply = asyncio.run(
            request(url, exchange.name, routing_key, json.dumps(body).encode(), body["message_id"])
        )

        fate = wait_settled(services, url, Queues.SUBMIT_JOB, body["message_id"])
        assert (len(fate.deliveries), fate.dead_lettered) == (1, False), fate
        assert reply == b""  # the handler returns nothing
        assert wait_job_ended(mongo, body["job_id"])["status"] == "COMPLETED"
