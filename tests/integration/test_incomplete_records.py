"""A stopped job's export holds every output it paid for: checked against the billing log.

A three-step job runs out of budget (or is cancelled) mid-way; records whose
later steps never ran are in the export flagged ``complete: false`` with null
outputs for those steps, and the outputs per step in the export are exactly
the calls the Bedrock emulator billed per step, in JSONL, CSV and Parquet.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from decimal import Decimal
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest

from palette.devstack.client import GatewayClient
from palette.devstack.stack import DevStack
from tests.integration.jobs import HAIKU, MICRO, export_rows, ledger, model_latency, start
from tests.integration.waiting import wait_records_done, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

# The answer's worst case is almost the whole record's: a lease that runs out stops
# the last record it starts after its cheap first steps nearly every time, rarely
# before them (a remainder below the first step's worst case), rarely after the
# answer (a remainder within the first steps' slack).
THREE_STEPS: dict[str, Any] = {
    "name": "three-steps",
    "steps": [
        {
            "id": "describe",
            "model": MICRO,
            "prompt": "Describe {{ product }} to a {{ persona.role }}.",
            "max_tokens": 8,
        },
        {
            "id": "question",
            "model": MICRO,
            "prompt": "Ask one question about: {{ steps.describe.output }}",
            "max_tokens": 8,
        },
        {
            "id": "answer",
            "model": HAIKU,
            "system": "Support agent for {{ product }}.",
            "prompt": "Answer: {{ steps.question.output }}",
            "max_tokens": 2000,
        },
    ],
}
STEPS = [step["id"] for step in THREE_STEPS["steps"]]


def submit(
    api: GatewayClient, num_records: int, budget: str, partition_size: int | None = None
) -> dict[str, Any]:
    """A three-step job of the example seeds."""
    _, _, job = start(
        api, num_records, THREE_STEPS, budget_usd=budget, partition_size=partition_size
    )
    return job


def download(api: GatewayClient, job_id: str, fmt: str) -> list[dict[str, Any]]:
    """The finished job's data in a format, through the download link."""
    link = wait_until(
        lambda: (
            (r := api.http.get(f"/jobs/{job_id}/download", params={"format": fmt})).status_code
            == 200
            and r.json()
        ),
        what=f"job {job_id}'s {fmt} download link",
        timeout=60,
    )
    body = httpx.get(link["url"], timeout=30).content
    if fmt == "parquet":
        table: list[dict[str, Any]] = pq.read_table(io.BytesIO(body), use_threads=False).to_pylist()
        return table
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(body.decode())))
        return [
            {
                **row,
                "index": int(row["index"]),
                "complete": {"true": True, "false": False}[row["complete"]],
                **{step: row[step] or None for step in STEPS},
            }
            for row in rows
        ]
    return [json.loads(line) for line in body.decode().splitlines()]


def check_against_billing(
    rows: list[dict[str, Any]], billed: list[dict[str, Any]]
) -> tuple[int, int]:
    """Outputs per step equal billed calls per step; the flag says which rows lack a step.

    Returns (complete rows, incomplete rows).
    """
    made = {(row["index"], step) for row in rows for step in STEPS if row[step] is not None}
    paid = [(int(c["request_metadata"]["record"]), c["request_metadata"]["step"]) for c in billed]
    assert len(paid) == len(set(paid)), "a step of a record was billed twice"
    assert Counter(step for _, step in made) == Counter(step for _, step in paid)
    assert made == set(paid), "every billed call's output is in the export, and only those"
    assert len({row["index"] for row in rows}) == len(rows), "a record appears twice"
    incomplete = 0
    for row in rows:
        present = [row[step] is not None for step in STEPS]
        assert row["complete"] is all(present), row
        # Steps run in order: an incomplete record has its first steps, never a later one alone.
        assert present == sorted(present, reverse=True), row
        assert present[0], "a record without any output is not in the export"
        incomplete += not row["complete"]
    return len(rows) - incomplete, incomplete


def check_counts(api: GatewayClient, final: dict[str, Any], complete: int, incomplete: int) -> None:
    """The job read and the dashboard count complete and incomplete records alike."""
    assert final["records_done"] == complete
    assert final["records_incomplete"] == incomplete
    assert (final["export"]["records"], final["export"]["incomplete"]) == (
        complete + incomplete,
        incomplete,
    )
    progress = api.http.get(f"/jobs/{final['id']}/dashboard").json()["progress"]
    assert (progress["done"], progress["incomplete"]) == (complete, incomplete)


class TestBudgetRunsOutMidJob:
    def test_every_billed_output_is_in_the_export_and_incomplete_records_are_flagged(
        self, api: GatewayClient, devstack: DevStack, mongo: Any, s3: Any
    ) -> None:
        probe = submit(api, 10, "1")
        assert api.wait(probe["id"])["status"] == "COMPLETED"
        per_record = ledger(mongo, probe["id"])["spent"] / 10
        budget = Decimal(int(per_record * 40)) / 10**12  # about 40 of 120 records
        job = submit(api, 120, str(budget))
        final = api.wait(job["id"], timeout=240)
        assert final["status"] == "BUDGET_EXCEEDED", final
        billed = devstack.emulator_control().billing(job_id=job["id"])
        assert ledger(mongo, job["id"])["calls"] == len(billed)
        rows = export_rows(s3, devstack.bucket, final["export"]["key"])
        complete, incomplete = check_against_billing(rows, billed)
        assert 20 <= complete < 120
        assert incomplete >= 1, "the lease ran out between two records"
        check_counts(api, final, complete, incomplete)
        for fmt in ("csv", "parquet"):
            assert check_against_billing(download(api, job["id"], fmt), billed) == (
                complete,
                incomplete,
            )


class TestCancelledMidJob:
    def test_records_in_flight_at_the_cancel_keep_the_steps_they_paid_for(
        self, api: GatewayClient, devstack: DevStack, mongo: Any, s3: Any
    ) -> None:
        with model_latency(devstack, 60):
            # Partitions of 500: the cancel comes in the middle of one, with calls in flight,
            # not between partitions (a slow machine once had none in flight with 100).
            job = submit(api, 2000, "40", partition_size=500)
            wait_records_done(api, job["id"], 20, timeout=120)
            assert api.cancel(job["id"])["outcome"] == "CANCEL_REQUESTED"
            final = api.wait(job["id"], timeout=120)
        assert final["status"] == "CANCELLED"
        billed = devstack.emulator_control().billing(job_id=job["id"])
        assert ledger(mongo, job["id"])["calls"] == len(billed)
        rows = export_rows(s3, devstack.bucket, final["export"]["key"])
        complete, incomplete = check_against_billing(rows, billed)
        assert complete >= 20
        assert incomplete >= 1, "no record was between two steps at the cancel"
        check_counts(api, final, complete, incomplete)
