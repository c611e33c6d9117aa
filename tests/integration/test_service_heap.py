"""Every service process exempts its start-up heap from full collections once it is up."""

from __future__ import annotations

import pytest

from palette.devstack.services import ServiceGroup
from tests.integration.telemetry import log_lines

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def test_each_service_freezes_its_startup_heap_once(services: ServiceGroup) -> None:
    services.wait_ready()
    frozen = {
        process.name: [
            line
            for line in log_lines(process.log_path)
            if line.get("event") == "startup_heap_frozen"
        ]
        for process in services
    }
    assert {name: len(lines) for name, lines in frozen.items()} == dict.fromkeys(frozen, 1)
    # Modules, clients and schemas: 140,000-200,000 tracked objects per service
    # (measured); far fewer would mean the freeze ran before start-up finished.
    assert all(lines[0]["objects"] > 100_000 for lines in frozen.values()), frozen
