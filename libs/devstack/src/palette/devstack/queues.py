"""Emptying a RabbitMQ virtual host of the system's queues, so a run starts clean."""

from __future__ import annotations

import aio_pika

from palette.common.topology import Queues


async def delete_queues(url: str) -> None:
    """Delete every queue of the system, and its dead-letter queue, on the broker at ``url``.

    The services declare them again as they start. Used by the test sessions and
    the benchmark, each on a virtual host of its own that is kept between runs.
    """
    connection = await aio_pika.connect(url, timeout=30)
    async with connection:
        for spec in Queues.all():
            for name in (spec.name, spec.dead_letter_queue):
                channel = await connection.channel()
                await channel.queue_delete(name)
                await channel.close()
