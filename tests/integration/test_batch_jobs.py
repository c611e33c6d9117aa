"""Jobs in batch mode: Bedrock batch inference jobs step by step, under the same hard budget."""

from __future__ import annotations

from collections.abc import Iterator
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
from tests.integration.waiting import wait_until

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
