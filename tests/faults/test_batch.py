"""A generator killed between a batch's submission and its results (case 14).

A batch-mode job's partition creates a Bedrock batch inference job and follows it
until its output is read. The generator is ``kill -9``'d from inside, at one of
two failpoints of ``BatchRun.submit``: ``generator.batch_created`` (the job
created, its ARN not yet recorded: the retry creates it again under the same
``clientRequestToken``, which Bedrock answers with the same job) and
``generator.batch_recorded`` (the ARN recorded: the retry polls that job). A
new generator process, without the failpoint, resumes. The emulator counts the
invocation jobs created: exactly one per partition and step, so nothing was
submitted (or billed) twice; the ledger equals the billing log, so nothing paid
was lost.
"""

from __future__ import annotations

import time

import pytest

from palette.devstack.batch_jobs import ENDED
from tests.faults.batch_checks import (
    assert_paid_outputs_exported,
    invocation_jobs,
    paid_outputs,
    restart_unarmed,
    wait_killed,
)
from tests.faults.conftest import FAULT_CASE_TIMEOUT, Rig
from tests.faults.harness import submit
from tests.integration.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(FAULT_CASE_TIMEOUT + 120)]

BATCH_SETTINGS = {
    "PALETTE_GENERATOR_BATCH_POLL_SECONDS": "0.2",
}


@pytest.mark.parametrize(
    ("failpoint", "records", "partition_size"),
    [
        pytest.param("generator.batch_recorded", 200, 200, id="arn-kept"),
        pytest.param("generator.batch_created", 300, 150, id="arn-not-kept"),
    ],
)
def test_generator_killed_between_batch_submit_and_results_resumes_the_same_job(
    failpoint: str,
    records: int,
    partition_size: int,
    rig: Rig,
) -> None:
    """Case 14: the generator dies right after creating a batch job; the job is followed."""
    armed = {**BATCH_SETTINGS, "PALETTE_FAILPOINTS": f"{failpoint}=kill"}
    group, api = rig.services(generators=1, overrides={"generator": armed})
    rig.emulator.configure(latency_ms=20, batch_delay_ms=2000)
    before = rig.emulator.batch_jobs()["submissions"]
    started = time.monotonic()
    job = submit(api, rig.seeds, records, "5", mode="batch", partition_size=partition_size)
    victim = group.generators[0]
    wait_killed(victim, failpoint)
    assert invocation_jobs(rig, job["id"]), "the generator died before creating a batch job"
    restart_unarmed(victim)
    final = rig.final(job)
    counters = rig.count(f"generator kill -9 at {failpoint} (batch)", job, started)
    assert final["status"] == "COMPLETED", final
    counters.assert_zero()
    assert counters.records == records
    partitions = records // partition_size
    created = invocation_jobs(rig, job["id"])
    assert len(created) == partitions, created  # one invocation job per partition and step
    assert rig.emulator.batch_jobs()["submissions"] - before == partitions
    assert all(j["status"] == "Completed" for j in created), created
    assert counters.billed_calls == records  # every entry billed once, none online
    assert '"batch_resumed"' in victim.log_text(since_start=True)  # followed, not resubmitted


@pytest.mark.parametrize(
    "failpoint",
    [
        pytest.param("generator.batch_recorded", id="arn-kept"),
        pytest.param("generator.batch_created", id="arn-not-kept"),
    ],
)
def test_job_cancelled_after_its_batch_generator_died_settles_the_batch(
    failpoint: str, rig: Rig
) -> None:
    """Case 14b: the generator dies with a batch running, the job is cancelled, no retry follows.

    Only the takeover of the lost holder's lease runs (it ends at once) and the
    cancelled job retries nothing: accounting settles the lost lease, stopping the
    batch job (the job is cancelled) and counting what it ran and billed. Without
    its ARN recorded, accounting finds the job by the name its token gave it. No
    attempt applies the stopped batch: the job's export gives its records what it
    ran (``palette.generator.batch_salvage``).
    """
    armed = {**BATCH_SETTINGS, "PALETTE_FAILPOINTS": f"{failpoint}=kill"}
    group, api = rig.services(generators=1, overrides={"generator": armed})
    rig.emulator.configure(latency_ms=20, batch_delay_ms=60_000)  # stopped long before its end
    started = time.monotonic()
    job = submit(api, rig.seeds, 200, "5", mode="batch", partition_size=200)
    victim = group.generators[0]
    wait_killed(victim, failpoint)
    api.cancel(job["id"])
    wait_until(
        lambda: rig.mongo["jobs"].find_one({"_id": job["id"], "status": "CANCELLED"}),
        what="the job to be cancelled",
        timeout=60,
    )
    restart_unarmed(victim)  # takes the lapsed claim over: the lost holder's lease is held
    lease = wait_until(
        lambda: rig.mongo["leases"].find_one(
            {"job_id": job["id"], "reconcile.kind": "lost", "reconcile.state": "done"}
        ),
        what="the lost holder's lease to be settled",
        timeout=120,
    )
    ended = wait_until(
        lambda: [j for j in invocation_jobs(rig, job["id"]) if j["status"] in ENDED],
        what="the batch job to end",
        timeout=120,
    )
    final = rig.final(job)
    counters = rig.count(f"generator kill -9 at {failpoint} (batch), then cancel", job, started)
    assert final["status"] == "CANCELLED", final
    assert (counters.duplicated, counters.cost_diff, counters.overspend) == (0, 0, 0), (
        counters.line()
    )
    assert counters.spent == int(lease["settled"]), (counters.line(), lease)
    assert len(ended) == 1, ended
    assert ended[0]["status"] == "Stopped", ended  # stopped, not run to its end
    assert 0 < counters.billed_calls < 200, counters.line()
    # What the stopped batch ran reaches the user: applied at the export (batch_salvage).
    paid = paid_outputs(rig, job["id"])
    assert len(paid) == counters.billed_calls
    rows = assert_paid_outputs_exported(rig, final, paid, ["line"])
    assert len(rows) == len(paid)
