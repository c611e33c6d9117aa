"""What the batch fault cases count: invocation jobs, the entries they billed, where outputs went.

``paid_outputs`` reads every answered entry of a job's batch inference jobs from
the emulator's output in S3 and checks it against the billing log (one billed
entry per answered one, none billed twice); ``assert_paid_outputs_exported``
then checks that each of them reached the user: its record is in the export
with that step's output (a record that lacks a later step flagged incomplete).
"""

from __future__ import annotations

import json
import signal
from collections import Counter
from typing import Any

from tests.faults.conftest import Rig
from tests.integration.jobs import export_rows
from tests.integration.waiting import wait_until

Paid = dict[tuple[int, str], str]
"""(record index, step id) -> the output text of its billed batch entry."""


def invocation_jobs(rig: Rig, job_id: str) -> list[dict[str, Any]]:
    """The emulator's batch inference jobs created for one of our jobs."""
    return [j for j in rig.emulator.batch_jobs()["jobs"] if j["tags"].get("job_id") == job_id]


def wait_killed(victim: Any, failpoint: str) -> None:
    """Wait for a generator to ``kill -9`` itself at ``failpoint``."""
    status = wait_until(
        lambda: victim.wait(0.1),
        what=f"the generator to kill itself at {failpoint}",
        timeout=120,
        interval=0,
    )
    assert status == -signal.SIGKILL, f"the generator exited with {status}"


def restart_unarmed(victim: Any) -> None:
    """Start the killed generator again, without its failpoints."""
    assert victim.process.env is not None
    victim.process.env.pop("PALETTE_FAILPOINTS")
    victim.start()


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.removeprefix("s3://").partition("/")
    return bucket, key


def paid_outputs(rig: Rig, job_id: str) -> Paid:
    """Every answered entry of the job's batch jobs; each billed exactly once (asserted)."""
    paid: Paid = {}
    for job in invocation_jobs(rig, job_id):
        bucket, prefix = _split(job["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"])
        name = job["inputDataConfig"]["s3InputDataConfig"]["s3Uri"].rsplit("/", 1)[1]
        key = f"{prefix.rstrip('/')}/{job['jobArn'].rsplit('/', 1)[1]}/{name}.out"
        listed = rig.s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])
        if not listed:  # a job that failed before running wrote nothing
            continue
        body = rig.s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        for line in (json.loads(x) for x in body.splitlines() if x.strip()):
            if "modelOutput" in line:
                text = line["modelOutput"]["output"]["message"]["content"][0]["text"]
                paid[(int(line["recordId"]), job["tags"]["step"])] = text
    billed = Counter(
        (int(e["request_metadata"]["record_id"]), e["request_metadata"]["step"])
        for e in rig.emulator.billing(job_id=job_id)
        if e["service_tier"] == "batch"
    )
    assert set(billed) == set(paid), "billed batch entries differ from the answered ones"
    assert max(billed.values(), default=1) == 1, "a batch entry was billed twice"
    return paid


def export_of(rig: Rig, final: dict[str, Any]) -> dict[int, dict[str, Any]]:
    """The job's exported rows by record index (each index once: asserted)."""
    rows = export_rows(rig.s3, rig.stack.bucket, final["export"]["key"])
    by_index = {int(row["index"]): row for row in rows}
    assert len(by_index) == len(rows), "a record is exported twice"
    return by_index


def assert_paid_outputs_exported(
    rig: Rig, final: dict[str, Any], paid: Paid, steps: list[str]
) -> dict[int, dict[str, Any]]:
    """Every paid entry's output is in the export; a record without every step is incomplete."""
    rows = export_of(rig, final)
    missing = sorted({i for i, _ in paid} - set(rows))
    assert not missing, f"{len(missing)} records with paid outputs are not exported: {missing[:5]}"
    for (index, step), text in paid.items():
        assert rows[index][step] == text, (index, step, rows[index])
    for index, row in rows.items():
        assert row["complete"] == all(row[s] is not None for s in steps), (index, row)
    return rows
