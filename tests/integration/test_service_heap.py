"""Every service process exempts its start-up heap from full collections once it is up."""

from __future__ import annotations

import json
from typing import Any

import pytest

from palette.devstack.services import ServiceGroup

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def frozen_lines(text: str) -> list[dict[str, Any]]:
    """The ``startup_heap_frozen`` lines of a service's log."""
    return [
        json.loads(line)
        for line in text.splitlines()
        if line.startswith("{") and '"event": "startup_heap_frozen"' in line
    ]


def test_each_service_freezes_its_startup_heap_once(services: ServiceGroup) -> None:
    """Once per start (other tests restart some of the session's services)."""
    services.wait_ready()
    frozen = {p.name: frozen_lines(p.log_text(since_start=True)) for p in services}
    assert {name: len(lines) for name, lines in frozen.items()} == dict.fromkeys(frozen, 1)
    # Modules, clients and schemas: 140,000-200,000 tracked objects per service
    # (measured); far fewer would mean the freeze ran before start-up finished.
    assert all(lines[0]["objects"] > 100_000 for lines in frozen.values()), frozen
