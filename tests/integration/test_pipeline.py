"""One budgeted job end to end: gateway, scheduler, accounting, generators over RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from palette.common.money import usd_to_picos
from palette.common.topology import Queues
from palette.devstack.client import GatewayClient
from palette.devstack.services import ServiceGroup
from palette.devstack.stack import DevStack
from tests.integration.deliveries import mark, wait_drained
from tests.integration.jobs import (
    MISTRAL,
    TWO_STEPS,
    assert_ids,
    assert_ledger_matches_billing,
    billed_picos,
    export_rows,
    ledger,
    model_latency,
    parquet_schema,
    publish_to,
    put_seeds,
    start,
    start_job,
)
from tests.integration.waiting import wait_job_ended, wait_records_done

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


class TestTwoStepJob:
    @pytest.mark.parametrize("fmt", ["jsonl", "parquet", "csv"])
    def test_completes_with_each_record_once_and_ledger_equal_to_billing(
        self, api: GatewayClient, devstack: DevStack, mongo: Any, s3: Any, fmt: str
    ) -> None:
        job = start_job(api, 300, "5", fmt)
        final = api.wait(job["id"], timeout=180)
        assert final["status"] == "COMPLETED", final
        rows = export_rows(s3, devstack.bucket, final["export"]["key"])
        assert final["export"]["key"].endswith(f"dataset.{fmt}")
        if fmt == "parquet":
            schema = parquet_schema(s3, devstack.bucket, final["export"]["key"])
            assert str(schema.field("answer").type) == "string"
            assert str(schema.field("answer_output_tokens").type).startswith("int")
        assert len(rows) == 300
        assert assert_ids(rows, job["id"], 300) == set(range(300))
        assert all(row["question"] and row["answer"] for row in rows)
        doc = assert_ledger_matches_billing(devstack, mongo, job["id"])
        assert doc["calls"] == 600
        assert Decimal(final["cost_usd"]) == Decimal(doc["spent"]) / 10**12
        assert final["records_done"] == 300


class TestBudgetExceeded:
    def test_budget_for_about_half_stops_within_budget_and_exports_what_it_made(
        self, api: GatewayClient, devstack: DevStack, mongo: Any, s3: Any
    ) -> None:
        # Measure what one record costs on this emulator, then budget for half of 200.
        probe = start_job(api, 20, "1")
        probe_final = api.wait(probe["id"])
        per_record = ledger(mongo, probe["id"])["spent"] / 20
        budget = Decimal(int(per_record * 100)) / 10**12
        job = start_job(api, 200, str(budget))
        final = api.wait(job["id"], timeout=180)
        assert probe_final["status"] == "COMPLETED"
        assert final["status"] == "BUDGET_EXCEEDED", final
        doc = assert_ledger_matches_billing(devstack, mongo, job["id"])
        assert doc["spent"] <= usd_to_picos(budget)
        rows = export_rows(s3, devstack.bucket, final["export"]["key"])
        made = assert_ids(rows, job["id"], 200)
        assert final["export"]["records"] == len(rows)
        # The partial export holds what was made, and the budget was used well.
        assert 60 <= len(made) < 200
        assert doc["spent"] >= usd_to_picos(budget) * 8 // 10


class TestCancel:
    def test_cancelled_job_stops_calling_the_model_and_exports_what_it_made(
        self,
        api: GatewayClient,
        services: ServiceGroup,
        devstack: DevStack,
        mongo: Any,
        s3: Any,
    ) -> None:
        since = mark(services.generators)
        with model_latency(devstack, 100) as emulator:
            job = start_job(api, 3000, "50")
            wait_records_done(api, job["id"], 30)
            # Cost so far is live: settled parts count before their lease closes.
            assert Decimal(api.job(job["id"])["cost_usd"]) > 0
            cancelled_at = datetime.now(UTC)
            api.cancel(job["id"])
            final = api.wait(job["id"], timeout=120)
        assert final["status"] == "CANCELLED"
        last_billed = max(
            datetime.fromisoformat(c["at"]) for c in emulator.billing(job_id=job["id"])
        )
        lag = (last_billed - cancelled_at).total_seconds()
        print(f"last call billed {lag:.3f}s after the cancel request (model latency 0.1s)")
        assert lag < 1.0, "the generators kept calling the model after the stop"
        calls_at_end, _ = billed_picos(emulator, job["id"])
        # A sentinel job queued behind anything left of the cancelled one completes, and
        # every partition delivery since the start has been handled to its end.
        sentinel = start_job(api, 20, "1")
        assert api.wait(sentinel["id"], timeout=120)["status"] == "COMPLETED"
        wait_drained(since, Queues.GENERATE_PARTITION.name)
        assert billed_picos(emulator, job["id"])[0] == calls_at_end, "calls after the stop"
        rows = export_rows(s3, devstack.bucket, final["export"]["key"])
        made = assert_ids(rows, job["id"], 3000)
        assert 30 <= len(made) < 3000
        assert_ledger_matches_billing(devstack, mongo, job["id"])


class TestUnknownModel:
    def test_gateway_refuses_a_template_with_an_unpriced_model(
        self, api: GatewayClient, mongo: Any, user: str
    ) -> None:
        body = {**TWO_STEPS, "steps": [{**TWO_STEPS["steps"][0], "model": "acme.gpt-9"}]}
        response = api.http.post("/templates", json=body)
        assert response.status_code == 422
        assert any(e["field"] == "steps[0].model" for e in response.json()["errors"])
        assert mongo["templates"].count_documents({"owner": user}) == 0

    def test_directly_submitted_job_with_unpriced_model_fails_before_any_call(
        self, devstack: DevStack, services: Any, mongo: Any, s3: Any
    ) -> None:
        owner, job_id = f"sys-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        key = put_seeds(devstack, s3, owner)
        steps = [{"id": "a", "model": "acme.gpt-9", "prompt": "Hi {{ product }}"}]
        body = {
            "job_id": job_id,
            "owner": owner,
            "template": {"steps": steps},
            "seed_key": key,
            "num_records": 10,
            "budget_usd": "1",
        }
        asyncio.run(
            publish_to(
                devstack.rabbitmq_url,
                "palette.commands",
                "job.submit",
                json.dumps(body).encode(),
                f"submit-{job_id}",
            )
        )
        job = wait_job_ended(mongo, job_id)
        assert job["status"] == "FAILED"
        assert "acme.gpt-9" in job["error"]
        assert billed_picos(devstack.emulator_control(), job_id) == (0, 0)


class TestDirectSubmit:
    def test_submit_job_published_by_another_system_creates_and_runs_the_job(
        self, devstack: DevStack, services: Any, mongo: Any, s3: Any
    ) -> None:
        owner, job_id = f"sys-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        key = put_seeds(devstack, s3, owner)
        body = {
            "job_id": job_id,
            "owner": owner,
            "template": {"steps": TWO_STEPS["steps"]},
            "seed_key": key,
            "num_records": 40,
            "budget_usd": "2",
            "output_format": "csv",
        }
        raw = json.dumps(body).encode()
        # Delivered twice (a retrying publisher): one job, one set of records.
        for _ in range(2):
            asyncio.run(
                publish_to(
                    devstack.rabbitmq_url, "palette.commands", "job.submit", raw, f"submit-{job_id}"
                )
            )
        job = wait_job_ended(mongo, job_id)
        assert job["status"] == "COMPLETED", job
        assert mongo["jobs"].count_documents({"_id": job_id}) == 1
        rows = export_rows(s3, devstack.bucket, job["export"]["key"])
        assert assert_ids(rows, job_id, 40) == set(range(40))
        doc = assert_ledger_matches_billing(devstack, mongo, job_id)
        assert doc["calls"] == 80


class TestRetries:
    def test_partition_failing_every_attempt_fails_the_job_and_spends_nothing(
        self, api: GatewayClient, devstack: DevStack, mongo: Any
    ) -> None:
        # 503 on every call (a throttle is waited out: test_quota_pacing.py).
        emulator = devstack.emulator_control()
        emulator.configure(unavailable_rate=1.0, fault_models=[MISTRAL])
        try:
            steps = [{"id": "a", "model": MISTRAL, "prompt": "{{ product }}"}]
            _, _, job = start(api, 20, {"name": "m", "steps": steps}, budget_usd="1")
            final = api.wait(job["id"], timeout=120)
        finally:
            emulator.reset()
        assert final["status"] == "FAILED"
        assert "ServiceUnavailable" in final["error"]
        partition = mongo["partitions"].find_one({"job_id": job["id"]})
        assert partition["failures"] == 3  # the scheduler's max_attempts
        doc = assert_ledger_matches_billing(devstack, mongo, job["id"])
        assert doc["spent"] == 0

    def test_throttled_and_unavailable_calls_are_retried_and_every_billed_call_settled(
        self, api: GatewayClient, devstack: DevStack, mongo: Any, s3: Any
    ) -> None:
        emulator = devstack.emulator_control()
        emulator.configure(
            throttle_rate=0.3, unavailable_rate=0.05, fault_models=[MISTRAL], seed=11
        )
        emulator.reset_stats()  # counts of this test's calls only
        try:
            steps = [{"id": "a", "model": MISTRAL, "prompt": "{{ product }}", "max_tokens": 40}]
            _, _, job = start(api, 100, {"name": "m", "steps": steps}, budget_usd="1")
            final = api.wait(job["id"], timeout=120)
            faults = emulator.stats()
        finally:
            emulator.reset()
        assert final["status"] == "COMPLETED", final
        assert faults.get("ThrottlingException", 0) > 0
        rows = export_rows(s3, devstack.bucket, final["export"]["key"])
        assert assert_ids(rows, job["id"], 100) == set(range(100))
        assert assert_ledger_matches_billing(devstack, mongo, job["id"])["calls"] == 100
        # Every throttled attempt the emulator answered is in the job's counts.
        tokens = api.dashboard(job["id"])["tokens"]
        assert tokens["throttled"] == faults["ThrottlingException"]
        failed = faults["ThrottlingException"] + faults.get("ServiceUnavailableException", 0)
        assert 0 < tokens["retried"] <= failed

    def test_the_job_counts_each_throttled_and_each_retried_attempt(
        self, api: GatewayClient, devstack: DevStack, mongo: Any, examples: Any
    ) -> None:
        # Three failed attempts, whichever calls they fall on: none is a call's
        # fourth, so each is followed by exactly one attempt made again.
        emulator = devstack.emulator_control()
        emulator.configure(
            script=["ThrottlingException", "ServiceUnavailableException", "ThrottlingException"],
            fault_models=[MISTRAL],
        )
        try:
            steps = [{"id": "a", "model": MISTRAL, "prompt": "{{ product }}", "max_tokens": 40}]
            template = api.create_template({"name": "m", "steps": steps})
            seeds = api.upload_seeds(examples / "seeds.jsonl")
            job = api.submit_job(
                template_id=template["id"],
                seed_key=seeds["key"],
                num_records=30,
                budget_usd="1",
                output_format="jsonl",
            )
            final = api.wait(job["id"], timeout=120)
            left = emulator.config()["script"]
        finally:
            emulator.reset()
        assert final["status"] == "COMPLETED", final
        assert left == []
        tokens = api.dashboard(job["id"])["tokens"]
        assert (tokens["throttled"], tokens["retried"], tokens["calls"]) == (2, 3, 30)
        doc = assert_ledger_matches_billing(devstack, mongo, job["id"])
        assert (doc["throttled_calls"], doc["retried_calls"]) == (2, 3)


class TestFairness:
    def test_a_small_job_is_not_queued_behind_a_large_one(self, api: GatewayClient) -> None:
        large = start_job(api, 3000, "20")
        small = start_job(api, 30, "1")
        done = api.wait(small["id"], timeout=60)
        assert done["status"] == "COMPLETED"
        still = api.job(large["id"])
        assert still["status"] == "RUNNING", "the large job finished first: no interleaving"
        assert still["records_done"] < 3000
        api.cancel(large["id"])
        api.wait(large["id"], timeout=120)


class TestSchedulerRestart:
    def test_a_killed_scheduler_resumes_its_jobs_from_the_database(
        self,
        api: GatewayClient,
        services: Any,
        devstack: DevStack,
        mongo: Any,
        s3: Any,
    ) -> None:
        job = start_job(api, 600, "10")
        wait_records_done(api, job["id"], 50)
        services.scheduler.kill(signal.SIGKILL)
        services.scheduler.restart()
        final = api.wait(job["id"], timeout=180)
        assert final["status"] == "COMPLETED", final
        rows = export_rows(s3, devstack.bucket, final["export"]["key"])
        assert assert_ids(rows, job["id"], 600) == set(range(600))
        assert_ledger_matches_billing(devstack, mongo, job["id"])
