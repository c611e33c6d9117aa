"""Fixtures shared by the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from palette.common import tracing


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Tracing on for the test (this process only), its spans kept in memory."""
    exporter = InMemorySpanExporter()
    assert tracing.configure("unit", None, exporter=exporter, set_global=False)
    yield exporter
    tracing.reset()
