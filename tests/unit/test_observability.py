"""Metrics and tracing machinery of palette.common, in-process (no network, no broker)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import structlog
from faststream.rabbit import TestRabbitBroker
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import format_trace_id
from prometheus_client import REGISTRY

from palette.common import tracing
from palette.common.broker import make_broker
from palette.common.messages import JobStatus
from palette.common.metrics import JobStatusCollector, job_status_family, usd
from palette.common.observability import message_fields
from palette.common.topology import Queues
from palette.generator.metrics import failure_outcome
from palette.generator.settings import GeneratorSettings
from palette.scheduler.settings import SchedulerSettings

pytestmark = pytest.mark.unit


class TestMessageFields:
    def test_takes_the_ids_from_the_body(self) -> None:
        body = {"message_id": "m-1", "job_id": "j-1", "partition": 3, "lease_id": "x"}
        assert message_fields(body, "amqp-id") == {
            "message_id": "m-1",
            "job_id": "j-1",
            "partition_id": 3,
        }

    def test_falls_back_to_the_amqp_message_id_for_a_body_that_is_not_an_object(self) -> None:
        assert message_fields(None, "amqp-id") == {"message_id": "amqp-id"}
        assert message_fields([1, 2], None) == {}

    def test_ignores_ids_of_the_wrong_type(self) -> None:
        body = {"job_id": 5, "partition": True, "message_id": None}
        assert message_fields(body, "amqp-id") == {"message_id": "amqp-id"}


class TestMetricsLogic:
    def test_money_is_exported_in_dollars(self) -> None:
        assert usd(1_500_000_000_000) == 1.5
        assert usd(1) == 1e-12

    @pytest.mark.parametrize(
        ("code", "retryable", "outcome"),
        [
            ("ThrottlingException", True, "throttled"),
            ("ServiceQuotaExceededException", True, "throttled"),
            ("InternalServerException", True, "retryable_error"),
            ("", True, "retryable_error"),
            ("ValidationException", False, "error"),
        ],
    )
    def test_failed_model_calls_are_labelled_by_kind(
        self, code: str, retryable: bool, outcome: str
    ) -> None:
        assert failure_outcome(code, retryable) == outcome

    def test_job_status_family_has_every_status_with_zero_for_the_absent(self) -> None:
        family = job_status_family({"RUNNING": 2, "COMPLETED": 5})
        values = {s.labels["status"]: s.value for s in family.samples}
        assert values == {status.value: 0.0 for status in JobStatus} | {
            "RUNNING": 2.0,
            "COMPLETED": 5.0,
        }


class Jobs:
    """A jobs collection that answers ``aggregate`` from rows (or raises)."""

    def __init__(self, rows: list[dict[str, Any]], error: Exception | None = None) -> None:
        self.rows = rows
        self.error = error
        self.pipelines: list[Any] = []

    async def aggregate(self, pipeline: Any) -> AsyncIterator[dict[str, Any]]:
        self.pipelines.append(pipeline)
        if self.error is not None:
            raise self.error

        async def rows() -> AsyncIterator[dict[str, Any]]:
            for row in self.rows:
                yield row

        return rows()


@pytest.fixture
def service_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """An event loop running in a thread, as a service's is while a scrape comes in."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield loop
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def collected(collector: JobStatusCollector) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for family in collector.collect():
        for sample in family.samples:
            out.setdefault(sample.name, {})[sample.labels.get("status", "")] = sample.value
    return out


class TestJobStatusCollector:
    def test_counts_jobs_by_status_on_the_service_loop(
        self, service_loop: asyncio.AbstractEventLoop
    ) -> None:
        jobs = Jobs([{"_id": "RUNNING", "n": 3}, {"_id": "FAILED", "n": 1}])
        result = collected(JobStatusCollector(jobs, service_loop))
        assert result["palette_jobs"]["RUNNING"] == 3
        assert result["palette_jobs"]["FAILED"] == 1
        assert result["palette_jobs"]["QUEUED"] == 0
        assert result["palette_jobs_counted"] == {"": 1.0}
        assert jobs.pipelines == [[{"$group": {"_id": "$status", "n": {"$sum": 1}}}]]

    def test_a_database_error_leaves_the_counts_out_and_says_so(
        self, service_loop: asyncio.AbstractEventLoop
    ) -> None:
        jobs = Jobs([], error=ConnectionError("mongo down"))
        assert collected(JobStatusCollector(jobs, service_loop)) == {
            "palette_jobs_counted": {"": 0.0}
        }

    def test_a_scrape_on_the_loop_itself_does_not_wait_for_it(self) -> None:
        async def scrape_on_loop() -> dict[str, dict[str, float]]:
            return collected(JobStatusCollector(Jobs([]), asyncio.get_running_loop()))

        assert asyncio.run(scrape_on_loop()) == {"palette_jobs_counted": {"": 0.0}}

    def test_registration_does_not_query(self, service_loop: asyncio.AbstractEventLoop) -> None:
        jobs = Jobs([])
        collector = JobStatusCollector(jobs, service_loop)
        REGISTRY.register(collector)
        REGISTRY.unregister(collector)
        assert jobs.pipelines == []


class TestSettings:
    def test_each_service_reads_its_own_metrics_port(self, monkeypatch: Any) -> None:
        monkeypatch.setenv("PALETTE_GENERATOR_METRICS_PORT", "9464")
        monkeypatch.setenv("PALETTE_SCHEDULER_METRICS_PORT", "9465")
        assert GeneratorSettings(_env_file=None).metrics_port == 9464  # type: ignore[call-arg]
        assert SchedulerSettings(_env_file=None).metrics_port == 9465  # type: ignore[call-arg]

    def test_metrics_are_off_and_tracing_is_off_by_default(self, monkeypatch: Any) -> None:
        monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
        monkeypatch.delenv("PALETTE_SCHEDULER_METRICS_PORT", raising=False)
        settings = SchedulerSettings(_env_file=None)  # type: ignore[call-arg]
        assert (settings.metrics_port, settings.otlp_endpoint) == (0, None)

    def test_the_standard_otlp_variable_sets_the_endpoint_and_blank_is_unset(
        self, monkeypatch: Any
    ) -> None:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
        assert SchedulerSettings(_env_file=None).otlp_endpoint == "http://collector:4318"  # type: ignore[call-arg]
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "  ")
        assert SchedulerSettings(_env_file=None).otlp_endpoint is None  # type: ignore[call-arg]


class TestTracing:
    def test_is_off_without_an_endpoint_or_when_the_sdk_is_disabled(self, monkeypatch: Any) -> None:
        assert not tracing.configure("unit", None)
        assert not tracing.configure("unit", "")
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        assert not tracing.configure("unit", "http://collector:4318")
        assert not tracing.enabled()
        assert tracing.broker_middleware() is None

    @pytest.mark.parametrize(
        ("endpoint", "url"),
        [
            ("http://c:4318", "http://c:4318/v1/traces"),
            ("http://c:4318/", "http://c:4318/v1/traces"),
            ("http://c:4318/v1/traces", "http://c:4318/v1/traces"),
        ],
    )
    def test_the_traces_url_follows_the_otlp_rule(self, endpoint: str, url: str) -> None:
        assert tracing.traces_url(endpoint) == url

    def test_a_traceparent_taken_in_one_span_continues_the_trace_elsewhere(
        self, spans: InMemorySpanExporter
    ) -> None:
        assert tracing.traceparent() is None
        with tracing.span("request"):
            parent = tracing.traceparent()
        assert parent is not None
        with tracing.resumed(parent), tracing.span("later", {"palette.job_id": "j"}):
            pass
        request, later = spans.get_finished_spans()
        assert request.context is not None
        assert later.context is not None
        assert later.context.trace_id == request.context.trace_id
        assert later.parent is not None
        assert later.parent.span_id == request.context.span_id
        assert later.attributes == {"palette.job_id": "j"}
        assert parent == tracing.traceresponse(request.context)

    def test_log_lines_get_the_ids_of_the_current_span_only(
        self, spans: InMemorySpanExporter
    ) -> None:
        assert tracing.add_trace_ids(None, "info", {"event": "x"}) == {"event": "x"}
        with tracing.span("work"):
            line = tracing.add_trace_ids(None, "info", {"event": "x"})
        (work,) = spans.get_finished_spans()
        assert work.context is not None
        assert line["trace_id"] == format_trace_id(work.context.trace_id)
        assert line["span_id"] == f"{work.context.span_id:016x}"

    def test_the_broker_middleware_is_installed_only_when_on(
        self, spans: InMemorySpanExporter
    ) -> None:
        assert tracing.broker_middleware() is not None


class TestMessageContext:
    async def test_a_handler_logs_with_the_ids_of_the_message_it_handles(self) -> None:
        broker = make_broker("amqp://guest:guest@localhost:5672/", queues=[Queues.SUBMIT_JOB])
        seen: list[dict[str, Any]] = []

        @broker.subscriber(Queues.SUBMIT_JOB.queue(), Queues.SUBMIT_JOB.exchange)
        async def handle(body: dict[str, Any]) -> None:
            seen.append(dict(structlog.contextvars.get_contextvars()))

        labels = {
            "app_name": "palette",
            "broker": "rabbitmq",
            "handler": "palette.commands.job.submit",
            "queue": Queues.SUBMIT_JOB.name,
        }

        def received() -> float:
            return REGISTRY.get_sample_value("palette_received_messages_total", labels) or 0.0

        before = received()
        async with TestRabbitBroker(broker) as test_broker:
            await test_broker.publish(
                {"message_id": "m-9", "job_id": "j-9", "partition": 2},
                exchange=Queues.SUBMIT_JOB.exchange,
                routing_key=Queues.SUBMIT_JOB.routing_key,
            )
        after = received()
        assert seen == [{"message_id": "m-9", "job_id": "j-9", "partition_id": 2}]
        assert structlog.contextvars.get_contextvars() == {}
        assert after == before + 1
