"""The documented publishing example (docs/publishing-commands.md) runs a job to the end.

It runs examples/publish_submit_job.py itself, the file the document shows, so
the documentation and the behaviour it promises cannot drift apart.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import time
import uuid
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from palette.devstack.stack import DevStack
from tests.integration.jobs import TWO_STEPS, billed_picos, export_rows, ledger

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "publish_submit_job.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("publish_submit_job", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wait_finished(mongo: Any, job_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = mongo["jobs"].find_one({"_id": job_id})
        if (
            job
            and job["status"] not in ("QUEUED", "RUNNING")
            and (job.get("export") or {}).get("status") in ("DONE", "FAILED")
        ):
            return dict(job)
        time.sleep(0.2)
    raise TimeoutError(f"job {job_id}: {mongo['jobs'].find_one({'_id': job_id})}")


def example_job(
    devstack: DevStack, s3: Any, examples: Path, num_records: int, budget_usd: str
) -> dict[str, Any]:
    """The example's ``SubmitJob`` body of a new job, its seeds put in S3."""
    owner, job_id = f"crm-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    seed_key = f"seed-data/{owner}/seeds.jsonl"
    s3.put_object(
        Bucket=devstack.bucket, Key=seed_key, Body=(examples / "seeds.jsonl").read_bytes()
    )
    body: dict[str, Any] = load_example().submit_job(
        job_id=job_id,
        owner=owner,
        steps=json.loads(json.dumps(TWO_STEPS["steps"])),
        seed_key=seed_key,
        num_records=num_records,
        budget_usd=budget_usd,
        output_format="jsonl",
    )
    return body


class TestPublishingExample:
    def test_documented_example_submits_a_job_that_completes_once_when_published_twice(
        self, devstack: DevStack, services: Any, mongo: Any, s3: Any, examples: Path
    ) -> None:
        example = load_example()
        body = example_job(devstack, s3, examples, 30, "2")
        job_id, owner = body["job_id"], body["owner"]
        # A publisher that lost its confirm publishes again: still one job.
        for _ in range(2):
            asyncio.run(example.publish_submit_job(devstack.rabbitmq_url, body))

        job = wait_finished(mongo, job_id)

        assert job["status"] == "COMPLETED", job
        assert job["owner"] == owner
        assert mongo["jobs"].count_documents({"_id": job_id}) == 1
        rows = export_rows(s3, devstack.bucket, job["export"]["key"])
        assert sorted(int(r["id"].rsplit("-", 1)[1]) for r in rows) == list(range(30))
        calls, cost = billed_picos(devstack.emulator_control(), job_id)
        assert calls == 60
        assert ledger(mongo, job_id)["spent"] == cost
