"""The system's queues on a RabbitMQ virtual host: emptying them, and their depths."""

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


async def queue_depths(url: str, connect_seconds: float = 30.0) -> dict[str, int | None]:
    """Messages ready in each of the system's queues and dead-letter queues (None: no queue)."""
    depths: dict[str, int | None] = {}
    connection = await aio_pika.connect(url, timeout=connect_seconds)
    async with connection:
        for spec in Queues.all():
            for name in (spec.name, spec.dead_letter_queue):
                channel = await connection.channel()
                try:
                    queue = await channel.declare_queue(name, passive=True)
                    depths[name] = queue.declaration_result.message_count
                except aio_pika.exceptions.ChannelClosed:
                    depths[name] = None
                finally:
                    if not channel.is_closed:
                        await channel.close()
    return depths
