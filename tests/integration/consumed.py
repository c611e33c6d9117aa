"""Positive signals that a service consumed a message, read from its log.

FastStream logs ``Received`` when a delivery reaches a handler and
``Processed`` when the handler is done (whatever its outcome), each with the
queue and the ``message_id``. A test that asserts something did *not* happen
first waits for one of these: its own sentinel message processed, or every
delivery of a queue processed, and only then looks for the absence.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from palette.devstack.services import ServiceProcess
from tests.integration.telemetry import json_lines

Marks = dict[Path, int]


def mark(services: Iterable[ServiceProcess]) -> Marks:
    """Where each service's log ends now: ``consumed`` reads from there on."""
    return {s.log_path: s.log_path.stat().st_size if s.log_path.exists() else 0 for s in services}


def _lines_since(path: Path, offset: int) -> Iterator[dict[str, Any]]:
    with path.open("rb") as log:
        log.seek(offset)
        return json_lines(log.read().decode("utf-8", "replace"))


def consumed(since: Marks, queue: str, event: str = "Processed") -> Counter[str]:
    """How often each message id was ``event`` on ``queue`` in the logs since ``since``."""
    found: Counter[str] = Counter()
    for path, offset in since.items():
        for line in _lines_since(path, offset):
            extra = line.get("extra") or {}
            if line.get("event") == event and extra.get("queue") == queue:
                found[str(extra.get("message_id"))] += 1
    return found


def wait_consumed(
    since: Marks, queue: str, message_id: str, times: int = 1, timeout: float = 60.0
) -> None:
    """Wait until ``message_id`` was processed ``times`` times on ``queue`` since ``since``."""
    deadline = time.monotonic() + timeout
    while consumed(since, queue)[message_id] < times:
        assert time.monotonic() < deadline, f"{message_id} not processed {times}x on {queue}"
        time.sleep(0.1)


def wait_drained(since: Marks, queue: str, timeout: float = 60.0) -> Counter[str]:
    """Wait until every delivery received on ``queue`` since ``since`` is processed; them."""
    deadline = time.monotonic() + timeout
    while (received := consumed(since, queue, "Received")) != consumed(since, queue):
        assert time.monotonic() < deadline, f"deliveries on {queue} still in process"
        time.sleep(0.1)
    return received
