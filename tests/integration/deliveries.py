"""What became of a message: how its consumers ended each delivery, and its dead-letter queue.

A message is settled, and can never be delivered again, once a consumer
acknowledged it or once it reached its dead-letter queue. The broker shows
neither exactly while it happens (a queue's depth counts only ready messages
on a passive declare, and ``rabbitmqctl`` reports a quorum queue's depth as of
its last tick), so the consumers' own record is read: FastStream logs
``Received`` when a delivery starts, the error when its handling (the reply
included) fails, and ``Processed`` when it ends. A delivery that ended without
an error is acknowledged (``AckPolicy.NACK_ON_ERROR``, see
``palette.common.broker.make_broker``); one that failed was requeued, and the
quorum queue dead-letters it at its delivery limit.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

import aio_pika

from palette.common.topology import QueueSpec
from palette.devstack.services import ServiceGroup
from tests.integration.telemetry import log_lines


@dataclass(frozen=True)
class Delivery:
    """One delivery of a message to one service process, as its log tells it."""

    process: str
    ended: bool
    failed: bool


@dataclass(frozen=True)
class Fate:
    """A settled message: its deliveries, and whether it reached its dead-letter queue."""

    deliveries: list[Delivery]
    dead_lettered: bool


def deliveries(group: ServiceGroup, queue: str, message_id: str) -> list[Delivery]:
    """Every delivery of ``message_id`` from ``queue`` to the group's processes, in order."""
    found = []
    for service in group:
        current: dict[str, bool] | None = None
        for line in log_lines(Path(service.log_path)):
            extra = line.get("extra")
            if not isinstance(extra, dict) or (extra.get("queue"), extra.get("message_id")) != (
                queue,
                message_id,
            ):
                continue
            event = str(line.get("event", ""))
            if event == "Received":
                current = {"failed": False}
            elif current is not None and event == "Processed":
                found.append(Delivery(service.name, ended=True, failed=current["failed"]))
                current = None
            elif current is not None and line.get("level") in {"error", "critical"}:
                current["failed"] = True
        if current is not None:
            found.append(Delivery(service.name, ended=False, failed=current["failed"]))
    return found


async def dead_letter_ids(url: str, queue: str) -> list[str]:
    """The message ids in a dead-letter queue, left where they are.

    Every message is fetched unacknowledged on one channel and returns to the
    queue when the channel closes.
    """
    connection = await aio_pika.connect(url)
    ids = []
    async with connection:
        channel = await connection.channel()
        dead = await channel.get_queue(queue, ensure=False)
        while (message := await dead.get(fail=False, no_ack=False)) is not None:
            ids.append(message.message_id or "")
    return ids


def wait_settled(
    group: ServiceGroup, url: str, queue: QueueSpec, message_id: str, timeout: float = 60.0
) -> Fate:
    """Wait until a consumer of ``queue`` acknowledged ``message_id`` or it was dead-lettered."""
    deadline = time.monotonic() + timeout
    while True:
        seen = deliveries(group, queue.name, message_id)
        dead = message_id in asyncio.run(dead_letter_ids(url, queue.dead_letter_queue))
        if dead or any(d.ended and not d.failed for d in seen):
            return Fate(seen, dead)
        assert time.monotonic() < deadline, f"{message_id} not settled: {seen}"
        time.sleep(0.2)
