"""Metrics, logs and traces of a real job, read as an operator would.

The four services run as processes (two generators) on a virtual host and a
database of their own, so every counter delta here is this module's doing: the
session's other services never take these messages. Each process serves
``/metrics`` on its own port and exports spans over OTLP/HTTP to a receiver in
this process. One job runs once (``job_run``) while every endpoint is scraped;
the tests compare what the metrics, the log files and the spans say with what
the emulator billed, the ledger holds and S3 stores.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from palette.common import keys
from palette.common import messages as m
from palette.common.metrics import PICOS_PER_USD
from palette.common.topology import ROUTES, Queues
from palette.devstack.client import FINAL, GatewayClient
from palette.devstack.processes import free_port
from palette.devstack.services import ServiceGroup, start_services
from palette.devstack.stack import DevStack
from palette.gateway.bearer_tokens import mint
from tests.backends import Backend
from tests.conftest import SERVICE_SETTINGS, kept_vhost_url, release_queues, vhost_name
from tests.integration.deliveries import take_dead_letter
from tests.integration.jobs import TWO_STEPS, publish_to
from tests.integration.telemetry import (
    OtlpReceiver,
    ReceivedSpan,
    Samples,
    log_lines,
    scrape,
    total,
)
from tests.integration.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

INSTANCES = ("gateway", "scheduler", "accounting", "generator-0", "generator-1")
SERVICES = ("gateway", "scheduler", "accounting", "generator")
NUM_RECORDS = 300
PARTITION_SIZE = int(SERVICE_SETTINGS["scheduler"]["PALETTE_SCHEDULER_PARTITION_SIZE"])
PART_SIZE = int(SERVICE_SETTINGS["generator"]["PALETTE_GENERATOR_PART_SIZE"])
PARTS = NUM_RECORDS // PART_SIZE
MODEL_LATENCY_MS = 100  # slow enough that scrapes see the job running


@dataclass
class Observed:
    """The observed services and where to read them."""

    group: ServiceGroup
    receiver: OtlpReceiver
    ports: dict[str, int]
    rabbitmq_url: str
    db: Any

    def scrape(self) -> dict[str, Samples]:
        """Every instance's metrics, now."""
        return {name: scrape(port) for name, port in self.ports.items()}

    def settled_scrape(self, timeout: float = 20.0) -> dict[str, Samples]:
        """Scrapes once nothing is in process and two in a row agree on every palette series."""
        previous = None

        def settled() -> dict[str, Samples] | None:
            nonlocal previous
            current = self.scrape()
            ours = {
                k: {s: v for s, v in d.items() if s[0].startswith("palette_")}
                for k, d in current.items()
            }
            busy = sum(total(d, "palette_received_messages_in_process") for d in current.values())
            if ours == previous and busy == 0:
                return current
            previous = ours
            return None

        return wait_until(settled, what="the metrics to settle", timeout=timeout, interval=0.5)

    def log(self, instance: str) -> list[dict[str, Any]]:
        """The JSON lines of an instance's log file."""
        return list(log_lines(Path(self.group.log_dir) / f"{instance}.log"))


@pytest.fixture(scope="module")
def observed(
    devstack: DevStack, test_backend: Backend, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Observed]:
    """The four services with metrics ports and tracing, on their own vhost and database."""
    vhost = vhost_name("-observe")
    url = kept_vhost_url(test_backend, vhost, reset=True)
    if url is None:
        pytest.fail(
            f"the observability tests need the virtual host {vhost!r} of their own (created "
            "with rabbitmqctl on the local guest broker), so no other service takes their messages",
            pytrace=False,
        )
    receiver = OtlpReceiver().start()
    ports = {name: free_port() for name in INSTANCES}
    database = f"palette_observe_{uuid.uuid4().hex[:8]}"
    env = {
        **devstack.env(),
        "RABBITMQ_URL": url,
        "PALETTE_MONGO_DB": database,
        "PALETTE_LOG_JSON": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
    }
    overrides: dict[str, dict[str, str]] = {k: dict(v) for k, v in SERVICE_SETTINGS.items()}
    for name, port in ports.items():
        service = name.split("-")[0]
        overrides.setdefault(name, {})[f"PALETTE_{service.upper()}_METRICS_PORT"] = str(port)
    client: MongoClient[dict[str, Any]] = MongoClient(devstack.mongo_url, tz_aware=True)
    log_dir = tmp_path_factory.mktemp("observed-logs")
    try:
        with start_services(env, generators=2, log_dir=log_dir, overrides=overrides) as group:
            yield Observed(group, receiver, ports, url, client[database])
    finally:
        receiver.stop()
        client.close()
        release_queues(url)


@dataclass
class JobRun:
    """One job and what was scraped before, during and after it."""

    job: dict[str, Any]
    trace_id: str
    before: dict[str, Samples]
    during: list[dict[str, Samples]]
    after: dict[str, Samples]

    @property
    def job_id(self) -> str:
        return str(self.job["id"])

    def delta(self, name: str, instance: str = "", **labels: str) -> float:
        """How much ``name`` moved over the job, summed over instances named ``instance*``."""
        return sum(
            total(self.after[i], name, **labels) - total(self.before[i], name, **labels)
            for i in self.after
            if i.startswith(instance)
        )


@pytest.fixture(scope="module")
def job_run(observed: Observed, devstack: DevStack, examples: Path, jwt_secret: str) -> JobRun:
    """Run one 300-record two-step job, scraping every endpoint all along."""
    before = observed.settled_scrape()
    control = devstack.emulator_control()
    api = GatewayClient(observed.group.gateway_url, mint(f"obs-{uuid.uuid4().hex[:8]}", jwt_secret))
    during = []
    control.configure(latency_ms=MODEL_LATENCY_MS)
    try:
        template = api.create_template(TWO_STEPS)
        seeds = api.upload_seeds(examples / "seeds.jsonl")
        response = api.http.post(
            "/jobs",
            json={
                "template_id": template["id"],
                "seed_key": seeds["key"],
                "num_records": NUM_RECORDS,
                "budget_usd": "5",
                "output_format": "jsonl",
            },
        )
        assert response.status_code == 201, response.text
        job_id = response.json()["id"]
        version, trace_id, _, _ = response.headers["traceresponse"].split("-")
        assert version == "00"

        def exported() -> dict[str, Any] | None:
            during.append(observed.scrape())
            job: dict[str, Any] = api.job(job_id)
            return job if job["status"] in FINAL and job.get("export") else None

        job = wait_until(
            exported,
            what=lambda: f"job {job_id} to end and export (still {api.job(job_id)['status']})",
            timeout=180,
            interval=0.1,
        )
    finally:
        control.reset()
        api.close()
    assert job["status"] == "COMPLETED", job
    return JobRun(job, trace_id, before, during, observed.settled_scrape())


def lease_docs(observed: Observed, job_id: str) -> list[dict[str, Any]]:
    return list(observed.db["leases"].find({"job_id": job_id}))


def part_count(s3: Any, bucket: str, job_id: str) -> int:
    listing = s3.list_objects_v2(Bucket=bucket, Prefix=keys.parts_prefix(job_id))
    return int(listing.get("KeyCount", 0))


@pytest.mark.long
class TestMetricsOfAJob:
    def test_records_calls_and_tokens_equal_what_the_emulator_billed(
        self, job_run: JobRun, devstack: DevStack
    ) -> None:
        billed = devstack.emulator_control().billing(job_id=job_run.job_id)
        assert len(billed) == 2 * NUM_RECORDS
        assert job_run.delta("palette_records_generated_total", "generator") == NUM_RECORDS
        assert job_run.delta("palette_records_exported_total", "generator") == NUM_RECORDS
        assert job_run.job["export"]["records"] == NUM_RECORDS
        calls = job_run.delta("palette_model_calls_total", "generator")
        assert job_run.delta("palette_model_calls_total", "generator", outcome="ok") == len(billed)
        assert calls == len(billed), "no failed call in a clean run"
        latency = job_run.delta("palette_model_call_duration_seconds_count", "generator")
        assert latency == len(billed)
        latency_sum = job_run.delta("palette_model_call_duration_seconds_sum", "generator")
        assert latency_sum >= len(billed) * MODEL_LATENCY_MS / 1000 * 0.9
        for model in {c["model_id"] for c in billed}:
            mine = [c for c in billed if c["model_id"] == model]
            got = {
                name: job_run.delta(f"palette_model_{name}_total", "generator", model=model)
                for name in ("calls", "input_tokens", "output_tokens")
            }
            assert got == {
                "calls": len(mine),
                "input_tokens": sum(c["input_tokens"] for c in mine),
                "output_tokens": sum(c["output_tokens"] for c in mine),
            }, model

    def test_dollars_reserved_settled_and_returned_equal_the_ledger(
        self, job_run: JobRun, observed: Observed
    ) -> None:
        ledger = observed.db["ledgers"].find_one({"_id": job_run.job_id})
        assert ledger is not None
        leases = lease_docs(observed, job_run.job_id)
        granted = sum(int(lease["amount"]) for lease in leases)
        assert ledger["spent"] > 0
        assert ledger["spent"] == sum(int(lease["settled"]) for lease in leases)
        settled = job_run.delta("palette_budget_settled_dollars_total", "accounting")
        reserved = job_run.delta("palette_budget_reserved_dollars_total", "accounting")
        returned = job_run.delta("palette_budget_returned_dollars_total", "accounting")
        assert settled == pytest.approx(ledger["spent"] / PICOS_PER_USD, rel=1e-12)
        assert reserved == pytest.approx(granted / PICOS_PER_USD, rel=1e-12)
        assert returned == pytest.approx((granted - ledger["spent"]) / PICOS_PER_USD, rel=1e-12)

    def test_messages_consumed_by_queue_are_the_messages_the_job_sent(
        self, job_run: JobRun, observed: Observed, s3: Any, devstack: DevStack
    ) -> None:
        leases = len(lease_docs(observed, job_run.job_id))
        parts = part_count(s3, devstack.bucket, job_run.job_id)
        assert leases >= NUM_RECORDS // PARTITION_SIZE
        assert parts == PARTS
        received = "palette_received_messages_total"
        expected = {
            ("scheduler", Queues.SUBMIT_JOB.name): 1,
            ("accounting", Queues.RESERVE_BUDGET.name): leases,
            ("generator", Queues.GENERATE_PARTITION.name): leases,
            ("accounting", Queues.ACC_RECORDS.name): parts,
            ("scheduler", Queues.SCHED_RECORDS.name): parts,
            ("accounting", Queues.ACC_PARTITION_COMPLETED.name): leases,
            ("generator", Queues.EXPORT_JOB.name): 1,
            ("scheduler", Queues.SCHED_EXPORT_COMPLETED.name): 1,
        }
        got = {key: job_run.delta(received, key[0], queue=key[1]) for key in expected}
        assert got == expected
        processed = "palette_received_processed_messages_total"
        for service in SERVICES:
            everything = job_run.delta(processed, service)
            assert everything == job_run.delta(processed, service, status="acked"), service
        assert job_run.delta("palette_messages_dead_lettered_total") == 0
        submit = "palette.commands.job.submit"
        assert job_run.delta("palette_published_messages_total", "gateway", destination=submit) == 1
        assert job_run.delta("palette_jobs_created_total", "gateway") == 1

    def test_job_status_and_in_flight_gauges_move_while_it_runs_and_return_after(
        self, job_run: JobRun
    ) -> None:
        def jobs(samples: dict[str, Samples], status: str) -> float:
            return total(samples["scheduler"], "palette_jobs", status=status)

        def generated(samples: dict[str, Samples]) -> float:
            return sum(total(samples[g], "palette_records_generated_total") for g in INSTANCES[3:])

        assert {s: jobs(job_run.before, s) for s in m.JobStatus} == dict.fromkeys(m.JobStatus, 0)
        assert any(jobs(s, "RUNNING") == 1 for s in job_run.during)
        assert any(
            sum(total(s[g], "palette_partitions_in_flight") for g in INSTANCES[3:]) > 0
            for s in job_run.during
        )
        start = generated(job_run.before)
        assert any(start < generated(s) < start + NUM_RECORDS for s in job_run.during)
        assert jobs(job_run.after, "COMPLETED") == 1
        assert jobs(job_run.after, "RUNNING") == 0
        assert total(job_run.after["scheduler"], "palette_jobs_counted") == 1
        for g in INSTANCES[3:]:
            assert total(job_run.after[g], "palette_partitions_in_flight") == 0


class TestDeadLetterMetrics:
    @pytest.mark.parametrize(
        ("body", "reason"),
        [(b"{not json", "JSONDecodeError"), (b'{"job_id": 1}', "ValidationError")],
    )
    def test_a_poison_command_is_counted_once_on_its_queue_and_lands_in_its_dlq(
        self, observed: Observed, body: bytes, reason: str
    ) -> None:
        queue = Queues.SUBMIT_JOB.name
        name = "palette_messages_dead_lettered_total"
        before = total(scrape(observed.ports["scheduler"]), name, queue=queue, reason=reason)
        exchange, routing_key = ROUTES[m.SubmitJob]
        mid = f"poison-{uuid.uuid4().hex}"
        asyncio.run(publish_to(observed.rabbitmq_url, exchange.name, routing_key, body, mid))
        wait_until(
            lambda: (
                total(scrape(observed.ports["scheduler"]), name, queue=queue, reason=reason)
                != before
            ),
            what="the poison message to be counted",
        )
        after = scrape(observed.ports["scheduler"])
        assert total(after, name, queue=queue, reason=reason) == before + 1
        dead = take_dead_letter(observed.rabbitmq_url, Queues.SUBMIT_JOB.dead_letter_queue, mid)
        assert dead["body"] == body
        assert "invalid message" in dead["error"]


def job_lines(observed: Observed, job_id: str) -> dict[str, list[dict[str, Any]]]:
    """Every JSON log line with ``job_id``, by service (the generators' together)."""
    out: dict[str, list[dict[str, Any]]] = {s: [] for s in SERVICES}
    for instance in INSTANCES:
        lines = [line for line in observed.log(instance) if line.get("job_id") == job_id]
        out[instance.split("-")[0]].extend(lines)
    return out


class TestLogsOfAJob:
    def test_one_job_id_filter_finds_the_job_in_all_four_services(
        self, job_run: JobRun, observed: Observed
    ) -> None:
        lines = job_lines(observed, job_run.job_id)
        events = {service: {line["event"] for line in found} for service, found in lines.items()}
        assert {"job_created", "job_submitted"} <= events["gateway"]
        assert {"job_started", "partition_ended", "job_completed"} <= events["scheduler"]
        assert {"lease_granted", "usage_settled", "lease_closed"} <= events["accounting"]
        assert {"partition_started", "records_generated", "partition_completed"} <= events[
            "generator"
        ]
        assert "export_completed" in events["generator"]
        for service, found in lines.items():
            assert all(line["service"] == service for line in found), service

    def test_handler_lines_carry_partition_and_message_ids_that_match_across_services(
        self, job_run: JobRun, observed: Observed
    ) -> None:
        lines = job_lines(observed, job_run.job_id)
        partitions = range(NUM_RECORDS // PARTITION_SIZE)
        for service in ("scheduler", "accounting", "generator"):
            handled = [line for line in lines[service] if "message_id" in line]
            assert handled, service
            with_partition = [line for line in handled if "partition_id" in line]
            assert with_partition, service
            assert all(line["partition_id"] in partitions for line in with_partition), service
        announced = {
            line["part_message_id"]
            for line in lines["generator"]
            if line["event"] == "records_generated"
        }
        settled = {
            line["message_id"] for line in lines["accounting"] if line["event"] == "usage_settled"
        }
        assert len(announced) == PARTS
        assert settled == announced


def job_trace_complete(spans: list[ReceivedSpan], trace_id: str) -> bool:
    mine = [s for s in spans if s.trace_id == trace_id]
    return {s.service for s in mine} == {f"palette-{s}" for s in SERVICES} and any(
        s.name == "write dataset" for s in mine
    )


class TestTraceOfAJob:
    def test_one_trace_runs_from_the_request_through_every_service_to_the_export(
        self, job_run: JobRun, observed: Observed
    ) -> None:
        trace_id = job_run.trace_id
        spans = observed.receiver.wait_for(lambda s: job_trace_complete(s, trace_id))
        mine = [s for s in spans if s.trace_id == trace_id]
        roots = [s for s in mine if not s.parent_span_id]
        assert [(s.service, s.name) for s in roots] == [("palette-gateway", "POST /jobs")]
        names = {(s.service, s.name) for s in mine}
        assert {
            ("palette-gateway", "palette.commands.job.submit publish"),
            ("palette-scheduler", "palette.commands.job.submit process"),
            ("palette-accounting", "palette.commands.budget.reserve process"),
            ("palette-generator", "palette.commands.partition.generate process"),
            ("palette-generator", "write part"),
            ("palette-accounting", "palette.events.records.generated process"),
            ("palette-scheduler", "palette.events.records.generated process"),
            ("palette-generator", "palette.commands.job.export process"),
            ("palette-generator", "write dataset"),
            ("palette-scheduler", "palette.events.export.completed process"),
        } <= names
        assert sum(s.name == "write part" for s in mine) == PARTS
        tagged = [s for s in spans if s.attributes.get("palette.job_id") == job_run.job_id]
        assert tagged
        assert {s.trace_id for s in tagged} == {trace_id}

    def test_every_log_line_of_the_job_carries_its_trace_id(
        self, job_run: JobRun, observed: Observed
    ) -> None:
        lines = job_lines(observed, job_run.job_id)
        for service, found in lines.items():
            assert found, service
            traces = {line.get("trace_id") for line in found}
            assert traces == {job_run.trace_id}, (service, traces)
