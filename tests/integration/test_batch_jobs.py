"""Jobs in batch mode: Bedrock batch inference jobs step by step, under the same hard budget."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from palette.devstack.client import GatewayClient
from palette.devstack.emulator_client import EmulatorControl
from palette.devstack.stack import DevStack
from tests.integration.jobs import (
    HAIKU,
    MICRO,
    assert_ledger_matches_billing,
    export_rows,
    start,
)
from tests.integration.waiting import wait_job_deleted, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

THREE_STEPS = {
    "name": "three-steps",
    "steps": [
        {"id": "q", "model": MICRO, "prompt": "Ask about {{ product }}.", "max_tokens": 20},
        {"id": "a", "model": HAIKU, "prompt": "Answer: {{ steps.q.output }}", "max_tokens": 30},
        {"id": "s", "model": MICRO, "prompt": "Sum up: {{ steps.a.output }}", "max_tokens": 10},
    ],
}


@pytest.fixture
def control(devstack: DevStack) -> Iterator[EmulatorControl]:
    control = devstack.emulator_control()
    yield control
    control.reset()


def batch_jobs_of(control: EmulatorControl, job_id: str) -> list[dict[str, Any]]:
    """The emulator's batch inference jobs submitted for one of our jobs."""
    return [j for j in control.batch_jobs()["jobs"] if j["tags"].get("job_id") == job_id]


class TestBatchJob:
    def test_three_steps_of_600_records_complete_exactly_and_the_ledger_equals_billing(
        self, api: GatewayClient, devstack: DevStack, mongo: Any, s3: Any, control: EmulatorControl
    ) -> None:
        _, _, job = start(api, 600, THREE_STEPS, mode="batch", partition_size=200, budget_usd="5")
        assert job["mode"] == "batch"
        final = api.wait(job["id"], timeout=200)
        assert final["status"] == "COMPLETED", final
        rows = export_rows(s3, devstack.bucket, final["export"]["key"])
        assert sorted(row["index"] for row in rows) == list(range(600))
        assert all(row["q"] and row["a"] and row["s"] and row["complete"] for row in rows)
        billed = control.billing(job_id=job["id"])
        assert len(billed) == 1800
        assert {entry["service_tier"] for entry in billed} == {"batch"}
        # One invocation job per partition and step: 3 partitions x 3 steps.
        assert len(batch_jobs_of(control, job["id"])) == 9
        assert_ledger_matches_billing(devstack, mongo, job["id"])


ONE_STEP_BATCH = {
    "name": "one-step-batch",
    "steps": [{"id": "q", "model": MICRO, "prompt": "Ask about {{ product }}.", "max_tokens": 20}],
}


class TestFailedEntries:
    def test_seven_percent_failed_entries_are_retried_and_every_record_is_made(
        self, api: GatewayClient, devstack: DevStack, mongo: Any, s3: Any, control: EmulatorControl
    ) -> None:
        control.configure(batch_error_rate=0.07, seed=18)
        _, _, job = start(api, 300, ONE_STEP_BATCH, mode="batch", partition_size=150)
        final = api.wait(job["id"], timeout=200)
        assert final["status"] == "COMPLETED", final
        rows = export_rows(s3, devstack.bucket, final["export"]["key"])
        assert sorted(row["index"] for row in rows) == list(range(300))
        billed = control.billing(job_id=job["id"])
        assert len(billed) == 300
        # The few failed entries of each partition are too few for a batch: online, billed so.
        assert {entry["service_tier"] for entry in billed} == {"batch", "default"}
        assert_ledger_matches_billing(devstack, mongo, job["id"])


class TestBudget:
    def test_a_budget_for_about_half_the_records_ends_budget_exceeded_within_it(
        self, api: GatewayClient, devstack: DevStack, mongo: Any
    ) -> None:
        _, _, probe = start(api, 1, ONE_STEP_BATCH, mode="batch")
        estimate = wait_until(
            lambda: (mongo["jobs"].find_one({"_id": probe["id"]}) or {}).get("record_estimate"),
            what="the probe job's record estimate",
        )
        api.wait(probe["id"], timeout=60)
        # The job estimate of 60 records (it assumes the largest seed): a rendered record's
        # worst case is smaller, so a first batch of over 100 fits, and not all 300.
        budget = Decimal(estimate * 60) / 10**12
        _, _, job = start(
            api, 300, ONE_STEP_BATCH, mode="batch", partition_size=300, budget_usd=str(budget)
        )
        final = api.wait(job["id"], timeout=200)
        assert final["status"] == "BUDGET_EXCEEDED", final
        doc = assert_ledger_matches_billing(devstack, mongo, job["id"])
        assert 0 < doc["spent"] <= doc["budget"]
        assert 0 < len(devstack.emulator_control().billing(job_id=job["id"])) < 300


class TestCancel:
    def test_cancel_mid_batch_stops_the_invocation_jobs_and_settles(
        self, api: GatewayClient, devstack: DevStack, mongo: Any, control: EmulatorControl
    ) -> None:
        control.configure(batch_delay_ms=30_000)
        _, _, job = start(api, 200, ONE_STEP_BATCH, mode="batch", partition_size=200)
        wait_until(
            lambda: any(j["status"] == "InProgress" for j in batch_jobs_of(control, job["id"])),
            what="the job's batch to run",
        )
        api.cancel(job["id"])
        final = api.wait(job["id"], timeout=120)
        assert final["status"] == "CANCELLED", final
        stopped = batch_jobs_of(control, job["id"])
        assert [j["status"] for j in stopped] == ["Stopped"]
        assert stopped[0]["processedRecordCount"] < 200
        assert_ledger_matches_billing(devstack, mongo, job["id"])


class TestDeletion:
    def test_deleting_a_batch_job_deletes_its_batch_invocations(
        self, api: GatewayClient, mongo: Any
    ) -> None:
        _, _, job = start(api, 100, ONE_STEP_BATCH, mode="batch", partition_size=100)
        final = api.wait(job["id"], timeout=120)
        assert final["status"] == "COMPLETED", final
        submissions = list(mongo["batch_invocations"].find({"job_id": job["id"]}))
        assert len(submissions) == 1, submissions
        assert submissions[0]["applied"] is True
        assert submissions[0]["arn"]
        assert api.http.delete(f"/jobs/{job['id']}").status_code == 202
        wait_job_deleted(api, job["id"], timeout=60)
        wait_until(
            lambda: mongo["batch_invocations"].count_documents({"job_id": job["id"]}) == 0,
            what="the job's batch_invocations to be purged",
        )


class TestOnlineRemainder:
    def test_a_batch_jobs_online_calls_wait_out_throttles_like_online_calls(
        self, api: GatewayClient, devstack: DevStack, mongo: Any, control: EmulatorControl
    ) -> None:
        # 40 records: fewer than a batch job takes, so all are called online (ModelCalls:
        # the quota pacer, call slots, throttles waited out and counted, not failures).
        control.configure(script=["ok"] * 20 + ["ThrottlingException"] * 2)
        _, _, job = start(api, 40, ONE_STEP_BATCH, mode="batch", partition_size=40)
        final = api.wait(job["id"], timeout=120)
        assert final["status"] == "COMPLETED", final
        billed = control.billing(job_id=job["id"])
        assert len(billed) == 40
        assert {entry["service_tier"] for entry in billed} == {"default"}
        assert batch_jobs_of(control, job["id"]) == []
        ledger = assert_ledger_matches_billing(devstack, mongo, job["id"])
        assert ledger["throttled_calls"] == 2, ledger
        partitions = list(mongo["partitions"].find({"job_id": job["id"]}))
        assert [p["failures"] for p in partitions] == [0], partitions
