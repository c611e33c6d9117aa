"""The fault suite's four counters, and running a job through the gateway.

Every case runs a real job, breaks something, waits for the job to end and
then counts, against the export, the ledger and the emulator's billing log:

``lost``
    record ids that should be in the export and are not: every id of the job
    when it completed, else every id some part in S3 holds (a stopped job
    exports what it made).
``duplicated``
    export rows minus distinct ids.
``cost_diff``
    the ledger's settled spend minus the cost of every call the emulator
    billed for the job, in picodollars (exact; printed in dollars to the
    micro-dollar).
``overspend``
    settled spend minus budget, when positive.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from palette.devstack.client import GatewayClient
from palette.devstack.stack import DevStack
from tests.integration.jobs import billed_picos, export_rows, start
from tests.integration.waiting import wait_leases_closed

ONE_STEP = {
    "name": "faults-one-step",
    "steps": [
        {
            "id": "line",
            "model": "amazon.nova-micro-v1:0",
            "prompt": "Write one line about {{ product }} for a {{ persona.role }}.",
            "max_tokens": 40,
        }
    ],
}
RESULTS: list[Counters] = []


@dataclass
class Counters:
    """The four counters of one case, with what they were counted from."""

    case: str
    status: str
    lost: int
    duplicated: int
    cost_diff: int
    overspend: int
    records: int
    billed_calls: int
    spent: int
    budget: int
    seconds: float

    def line(self) -> str:
        """The case's one line."""
        return (
            f"{self.case}: lost={self.lost} duplicated={self.duplicated} "
            f"cost_diff_usd={self.cost_diff / 10**12:+.6f} "
            f"overspend_usd={self.overspend / 10**12:.6f} | status={self.status} "
            f"records={self.records} billed_calls={self.billed_calls} "
            f"spent_usd={self.spent / 10**12:.6f} budget_usd={self.budget / 10**12:.6f} "
            f"{self.seconds:.1f}s"
        )

    def assert_zero(self) -> None:
        """Lost, duplicated, cost difference and overspend are all zero."""
        assert (self.lost, self.duplicated, self.cost_diff, self.overspend) == (0, 0, 0, 0), (
            self.line()
        )


def part_ids(s3: Any, bucket: str, job_id: str) -> set[str]:
    """Ids of every record the job's parts in S3 hold."""
    ids: set[str] = set()
    paginator = s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=bucket, Prefix=f"jobs/{job_id}/parts/"):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            ids.update(json.loads(line)["id"] for line in body.decode().splitlines() if line)
    return ids


def count(
    case: str,
    stack: DevStack,
    mongo: Any,
    s3: Any,
    job: dict[str, Any],
    started: float,
    timeout: float = 90,
) -> Counters:
    """Count a finished job's four counters and record them for the session's summary.

    Waits (up to ``timeout`` seconds) for every lease of the job to be closed
    first: a lease whose calls' outcome is unknown closes once reconciled.
    """
    job_id, target = job["id"], int(job["num_records"])
    doc = wait_leases_closed(mongo, job_id, timeout)
    final = mongo["jobs"].find_one({"_id": job_id}) or {}
    export = final.get("export") or {}
    rows = export_rows(s3, stack.bucket, export["key"]) if export.get("key") else []
    exported = [str(row["id"]) for row in rows]
    if final.get("status") == "COMPLETED":
        expected = {f"{job_id}-{i}" for i in range(target)}
    else:
        expected = part_ids(s3, stack.bucket, job_id)
    calls, billed = billed_picos(stack.emulator_control(), job_id)
    budget = int(doc["budget"])
    result = Counters(
        case=case,
        status=str(final.get("status")),
        lost=len(expected - set(exported)),
        duplicated=len(exported) - len(set(exported)),
        cost_diff=int(doc["spent"]) - billed,
        overspend=max(0, int(doc["spent"]) - budget),
        records=len(set(exported)),
        billed_calls=calls,
        spent=int(doc["spent"]),
        budget=budget,
        seconds=time.monotonic() - started,
    )
    RESULTS.append(result)
    return result


def write_results(path: Path) -> None:
    """Append this session's counters to a JSON-lines file."""
    with path.open("a") as out:
        for result in RESULTS:
            out.write(json.dumps(asdict(result)) + "\n")


def submit(
    api: GatewayClient,
    seeds: Path,
    num_records: int,
    budget_usd: str,
    *,
    template: dict[str, Any] | None = None,
    fmt: str = "jsonl",
    partition_size: int | None = None,
    mode: str | None = None,
) -> dict[str, Any]:
    """Create a template (one step by default), upload the seeds and submit a job."""
    named = {**(template or ONE_STEP), "name": f"f-{uuid.uuid4().hex[:8]}"}
    extra: dict[str, Any] = {} if partition_size is None else {"partition_size": partition_size}
    if mode is not None:
        extra["mode"] = mode
    _, _, job = start(
        api, num_records, named, seeds=seeds, budget_usd=budget_usd, output_format=fmt, **extra
    )
    return job


def budget_for(records: int, per_record_picos: int) -> str:
    """A budget in dollars (string) for about ``records`` records."""
    picos = records * per_record_picos
    return f"{picos / 10**12:.12f}"
