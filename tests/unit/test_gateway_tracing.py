"""The gateway's request spans and the trace a job's SubmitJob carries, in-process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_trace_id

from palette.common import tracing
from palette.common.messages import Message
from palette.gateway import outbox
from palette.gateway.app import create_app
from tests.unit.gateway_fakes import RecordingPublisher
from tests.unit.test_gateway_app import World, _job_body, _seed, _template, auth

pytestmark = pytest.mark.unit


class TracePublisher(RecordingPublisher):
    """Records, with each message, the trace it was published in."""

    def __init__(self) -> None:
        super().__init__()
        self.traces: list[str | None] = []

    async def publish(self, message: Message) -> None:
        await super().publish(message)
        self.traces.append(tracing.traceparent())


@pytest.fixture
def world() -> World:
    world = World()
    world.publisher = TracePublisher()
    return world


@pytest.fixture
def client(world: World, spans: InMemorySpanExporter) -> Iterator[TestClient[Any]]:
    with TestClient(create_app(world.settings, runtime_factory=world.runtime)) as test_client:
        yield test_client


def trace_of(header: str) -> str:
    version, trace_id, _, _ = header.split("-")
    assert version == "00"
    return trace_id


class TestRequestSpans:
    def test_a_job_request_is_a_server_span_named_by_its_route_whose_trace_submit_job_carries(
        self, client: TestClient[Any], world: World, spans: InMemorySpanExporter
    ) -> None:
        body = _job_body(_template(client), _seed(client, b'{"topic": "x"}\n'))
        response = client.post("/jobs", json=body, headers=auth("alice"))
        assert response.status_code == 201, response.text
        trace_id = trace_of(response.headers["traceresponse"])
        posts = [s for s in spans.get_finished_spans() if s.name == "POST /jobs"]
        assert len(posts) == 1
        assert posts[0].context is not None
        assert format_trace_id(posts[0].context.trace_id) == trace_id
        assert posts[0].attributes is not None
        assert posts[0].attributes["http.route"] == "/jobs"
        assert posts[0].attributes["http.response.status_code"] == 201
        publisher = world.publisher
        assert isinstance(publisher, TracePublisher)
        (parent,) = publisher.traces
        assert parent is not None
        assert trace_of(parent) == trace_id

    def test_a_caller_s_traceparent_is_continued(
        self, client: TestClient[Any], spans: InMemorySpanExporter
    ) -> None:
        caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        response = client.get("/jobs", headers={**auth("alice"), "traceparent": caller})
        assert response.status_code == 200
        assert trace_of(response.headers["traceresponse"]) == "0af7651916cd43dd8448eb211c80319c"
        (listing,) = [s for s in spans.get_finished_spans() if s.name == "GET /jobs"]
        assert listing.parent is not None
        assert listing.parent.span_id == 0xB7AD6B7169203331

    def test_health_probes_are_not_traced(
        self, client: TestClient[Any], spans: InMemorySpanExporter
    ) -> None:
        response = client.get("/health")
        assert response.status_code == 200
        assert "traceresponse" not in response.headers
        assert spans.get_finished_spans() == ()


class TestOutboxTrace:
    def test_a_submit_job_published_later_by_the_outbox_continues_the_request_s_trace(
        self, client: TestClient[Any], world: World
    ) -> None:
        body = _job_body(_template(client), _seed(client, b'{"topic": "x"}\n'))
        world.publisher.down = True
        response = client.post("/jobs", json=body, headers=auth("alice"))
        assert response.status_code == 201, response.text
        world.publisher.down = False
        sent = asyncio.run(outbox.flush(world.repository, world.publisher, -1.0))
        assert sent == 1
        publisher = world.publisher
        assert isinstance(publisher, TracePublisher)
        (parent,) = publisher.traces
        assert parent is not None
        assert trace_of(parent) == trace_of(response.headers["traceresponse"])
