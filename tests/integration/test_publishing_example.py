"""The documented publishing example (docs/publishing-commands.md) runs a job to the end.

It runs examples/publish_submit_job.py itself, the file the document shows, so
the documentation and the behaviour it promises cannot drift apart.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from palette.devstack.stack import DevStack
from tests.examples import load_publishing_example
from tests.integration.jobs import billed_picos, example_job, export_rows, ledger
from tests.integration.waiting import wait_job_ended

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


class TestPublishingExample:
    def test_documented_example_submits_a_job_that_completes_once_when_published_twice(
        self, devstack: DevStack, services: Any, mongo: Any, s3: Any
    ) -> None:
        example = load_publishing_example()
        body = example_job(devstack, s3, 30, "2")
        job_id, owner = body["job_id"], body["owner"]
        # A publisher that lost its confirm publishes again: still one job.
        for _ in range(2):
            asyncio.run(example.publish_submit_job(devstack.rabbitmq_url, body))

        job = wait_job_ended(mongo, job_id)

        assert job["status"] == "COMPLETED", job
        assert job["owner"] == owner
        assert mongo["jobs"].count_documents({"_id": job_id}) == 1
        rows = export_rows(s3, devstack.bucket, job["export"]["key"])
        assert sorted(int(r["id"].rsplit("-", 1)[1]) for r in rows) == list(range(30))
        calls, cost = billed_picos(devstack.emulator_control(), job_id)
        assert calls == 60
        assert ledger(mongo, job_id)["spent"] == cost
