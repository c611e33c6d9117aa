"""What became of a message: its deliveries as the consumers' logs tell them, and dead letters.

FastStream logs ``Received`` when a delivery reaches a handler, the error when
its handling (the reply included) fails, and ``Processed`` when it ends
(whatever its outcome), each with the queue and the ``message_id``. The broker
shows none of this exactly while it happens (a queue's depth counts only ready
messages on a passive declare, and ``rabbitmqctl`` reports a quorum queue's
depth as of its last tick), so the consumers' own record is read.

- A test that asserts something did *not* happen first waits for a positive
  signal: its own sentinel message processed (``wait_consumed``), or every
  delivery of a queue processed (``wait_drained``), counted in the logs from a
  ``mark`` on; only then does it look for the absence.
- A message is settled, and can never be delivered again, once a consumer
  acknowledged it or once it reached its dead-letter queue (``wait_settled``).
  A delivery that ended without an error is acknowledged
  (``AckPolicy.NACK_ON_ERROR``, see ``palette.common.broker.make_broker``); one
  that failed was requeued, and the quorum queue dead-letters it at its
  delivery limit.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika

from palette.common.topology import ERROR_HEADER, QueueSpec
from palette.devstack.services import ServiceGroup, ServiceProcess
from tests.integration.telemetry import json_lines
from tests.integration.waiting import wait_until

Marks = dict[Path, int]


def mark(services: Iterable[ServiceProcess]) -> Marks:
    """Where each service's log ends now: ``consumed`` reads from there on."""
    return {s.log_path: s.log_path.stat().st_size if s.log_path.exists() else 0 for s in services}


def _lines_since(path: Path, offset: int) -> Iterator[dict[str, Any]]:
    if not path.exists():
        return iter(())
    with path.open("rb") as log:
        log.seek(offset)
        return json_lines(log.read().decode("utf-8", "replace"))


def _about(line: dict[str, Any], queue: str) -> str | None:
    """The message id of a log line about a delivery from ``queue``, else None."""
    extra = line.get("extra")
    if not isinstance(extra, dict) or extra.get("queue") != queue:
        return None
    return str(extra.get("message_id"))


def consumed(since: Marks, queue: str, event: str = "Processed") -> Counter[str]:
    """How often each message id was ``event`` on ``queue`` in the logs since ``since``."""
    found: Counter[str] = Counter()
    for path, offset in since.items():
        for line in _lines_since(path, offset):
            message_id = _about(line, queue)
            if message_id is not None and line.get("event") == event:
                found[message_id] += 1
    return found


def wait_consumed(
    since: Marks, queue: str, message_id: str, times: int = 1, timeout: float = 60.0
) -> None:
    """Wait until ``message_id`` was processed ``times`` times on ``queue`` since ``since``."""
    wait_until(
        lambda: consumed(since, queue)[message_id] >= times,
        what=f"{message_id} to be processed {times}x on {queue}",
        timeout=timeout,
        interval=0.1,
    )


def wait_drained(since: Marks, queue: str, timeout: float = 60.0) -> Counter[str]:
    """Wait until every delivery received on ``queue`` since ``since`` is processed; them."""

    received: Counter[str] = Counter()

    def drained() -> bool:
        nonlocal received
        received = consumed(since, queue, "Received")
        return received == consumed(since, queue)

    wait_until(
        drained, what=f"the deliveries on {queue} to be processed", timeout=timeout, interval=0.1
    )
    return received


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
        for line in _lines_since(Path(service.log_path), 0):
            if _about(line, queue) != message_id:
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


def wait_settled(
    group: ServiceGroup, url: str, queue: QueueSpec, message_id: str, timeout: float = 60.0
) -> Fate:
    """Wait until a consumer of ``queue`` acknowledged ``message_id`` or it was dead-lettered."""

    def settled() -> Fate | None:
        seen = deliveries(group, queue.name, message_id)
        dead = message_id in asyncio.run(dead_letter_ids(url, queue.dead_letter_queue))
        return Fate(seen, dead) if dead or any(d.ended and not d.failed for d in seen) else None

    return wait_until(
        settled,
        what=lambda: f"{message_id} to settle: {deliveries(group, queue.name, message_id)}",
        timeout=timeout,
    )


# ------------------------------------------------------------ dead-letter queues


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


async def drain(url: str, queue: str) -> list[aio_pika.abc.AbstractIncomingMessage]:
    """Take every message off ``queue`` (acknowledged): what was there."""
    connection = await aio_pika.connect(url)
    found = []
    async with connection:
        channel = await connection.channel()
        q = await channel.get_queue(queue)
        while (msg := await q.get(fail=False, no_ack=False)) is not None:
            found.append(msg)
            await msg.ack()
    return found


def wait_dead_lettered(
    url: str, queues: Iterable[QueueSpec], count: int, timeout: float
) -> dict[str, list[aio_pika.abc.AbstractIncomingMessage]]:
    """Take every dead letter of the queues until each has given ``count``: them, by queue.

    Every dead-letter queue is emptied on each round, so a copy that comes after
    the ``count`` expected ones (while another queue is waited for) is taken too.
    """
    specs = list(queues)
    dead: dict[str, list[aio_pika.abc.AbstractIncomingMessage]] = {q.name: [] for q in specs}

    def all_there() -> bool:
        for spec in specs:
            dead[spec.name] += asyncio.run(drain(url, spec.dead_letter_queue))
        return all(len(got) >= count for got in dead.values())

    wait_until(
        all_there,
        what=lambda: (
            f"{count} dead letters from each queue: { ({k: len(v) for k, v in dead.items()}) }"
        ),
        timeout=timeout,
        interval=0.1,
    )
    return dead


def take_dead_letter(
    url: str, queue: str, message_id: str, timeout: float = 10.0
) -> dict[str, Any]:
    """Wait for the dead letter ``message_id`` in ``queue`` and take it (others are left there)."""

    async def take() -> dict[str, Any] | None:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel()
            dlq = await channel.get_queue(queue, ensure=False)
            while (message := await dlq.get(no_ack=False, fail=False)) is not None:
                if message.message_id == message_id:
                    await message.ack()
                    headers = message.headers or {}
                    return {"body": message.body, "error": str(headers.get(ERROR_HEADER))}
        return None  # the others return to the queue with the channel

    return wait_until(lambda: asyncio.run(take()), what=f"{message_id} in {queue}", timeout=timeout)
