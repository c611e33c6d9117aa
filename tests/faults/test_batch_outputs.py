"""Batch-mode jobs that end without applying a batch they paid for (cases 14c, 14d, 14e).

A batch inference job bills every entry it ran, whatever happens to the attempt
that submitted it. These cases end that attempt in the ways left after case 14
and check that the money and the outputs both arrive: the ledger equals the
emulator's billing log, no entry is billed twice (the emulator counts
submissions and billed entries), settled spend stays within the budget, and
every billed entry's output is in the job's export (a record missing a later
step flagged ``complete: false``).

- 14c: the generator is killed right after submitting step 1's batch and the
  budget leaves no lease for the retry: the lost holder's lease pays for the
  batch (accounting follows it to its end), the job ends ``BUDGET_EXCEEDED``,
  and the export still carries the batch's outputs.
- 14d: the attempt fails while following its own batch (GetModelInvocationJob
  answers 500 past botocore's retries): the retry resumes the batch instead of
  submitting it again, and it is counted once.
- 14e: the job is cancelled after step 1's batch was read, with step 2's batch
  running: step 2 is stopped, and every record's step-1 output is exported.
"""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from palette.common import seeds as seed_files
from palette.common.service_tiers import rated_table
from palette.common.templates import TemplateSpec
from palette.scheduler.partitioning import record_estimate, summarize_seeds
from tests.faults.batch_checks import (
    assert_paid_outputs_exported,
    invocation_jobs,
    paid_outputs,
    restart_unarmed,
    wait_killed,
)
from tests.faults.conftest import FAULT_CASE_TIMEOUT, Rig
from tests.faults.harness import submit
from tests.integration.jobs import HAIKU, MICRO, PRICING
from tests.integration.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(FAULT_CASE_TIMEOUT + 120)]

BATCH_SETTINGS = {"PALETTE_GENERATOR_BATCH_POLL_SECONDS": "0.2"}
SDK_ATTEMPTS = 5
"""Attempts of a control-plane call (``BatchControl``'s botocore ``total_max_attempts``)."""
STEPS = ["q", "a"]
QUESTION = {"id": "q", "model": MICRO, "prompt": "Ask about {{ product }}.", "max_tokens": 20}
CHEAP = {
    "name": "batch-two-steps",
    "steps": [
        QUESTION,
        {"id": "a", "model": MICRO, "prompt": "Answer: {{ steps.q.output }}", "max_tokens": 20},
    ],
}
DEAR_ANSWER = {
    "name": "batch-dear-answer",
    "steps": [
        QUESTION,
        {"id": "a", "model": HAIKU, "prompt": "Answer: {{ steps.q.output }}", "max_tokens": 1000},
    ],
}


def estimate(template: dict[str, Any], seeds: Path) -> int:
    """A record's worst case at the batch price, as the scheduler sizes leases with it."""
    with seeds.open("rb") as stream:
        summary = summarize_seeds(
            seed_files.read_records(stream, seed_files.format_from_name(seeds.name))
        )
    spec = TemplateSpec.model_validate({"steps": template["steps"]})
    return record_estimate(spec, rated_table(PRICING, "batch"), summary.largest_bytes)


def usd(picos: int) -> str:
    """Picodollars as an exact USD string."""
    return str(Decimal(picos) / 10**12)


def running(rig: Rig, job_id: str, step: str) -> list[dict[str, Any]]:
    """The job's batch jobs of ``step`` that run now."""
    return [
        j
        for j in invocation_jobs(rig, job_id)
        if j["tags"]["step"] == step and j["status"] == "InProgress"
    ]


def test_no_lease_left_for_the_retry_still_exports_the_lost_holders_batch(rig: Rig) -> None:
    """Case 14c: a budget of one record's worst case; the generator dies after step 1's submit.

    The first lease (the whole budget) pays for step 1's batch of 100 entries
    (small: step 2's worst case is what a record's estimate is made of). The
    retry needs a lease of one record's worst case, and what the batch left is
    less: the job ends BUDGET_EXCEEDED once the lost lease has been settled.
    """
    failpoint = "generator.batch_recorded"
    armed = {**BATCH_SETTINGS, "PALETTE_FAILPOINTS": f"{failpoint}=kill"}
    group, api = rig.services(generators=1, overrides={"generator": armed})
    rig.emulator.configure(latency_ms=20, batch_delay_ms=2000)
    before = rig.emulator.batch_jobs()["submissions"]
    unit = estimate(DEAR_ANSWER, rig.seeds)
    started = time.monotonic()
    job = submit(
        api, rig.seeds, 100, usd(unit), template=DEAR_ANSWER, mode="batch", partition_size=100
    )
    wait_killed(group.generators[0], failpoint)
    restart_unarmed(group.generators[0])
    final = rig.final(job)
    counters = rig.count("no lease left for the retry (batch)", job, started)
    assert final["record_estimate"] == unit, final
    assert final["status"] == "BUDGET_EXCEEDED", final
    counters.assert_zero()
    assert rig.emulator.batch_jobs()["submissions"] - before == 1
    leases = list(rig.mongo["leases"].find({"job_id": job["id"]}))
    assert [(lease.get("reconcile") or {}).get("kind") for lease in leases] == ["lost"], leases
    assert counters.spent == int(leases[0]["settled"]) > 0
    paid = paid_outputs(rig, job["id"])
    assert {step for _, step in paid} == {"q"}
    assert len(paid) == 100
    rows = assert_paid_outputs_exported(rig, final, paid, STEPS)
    assert len(rows) == 100
    assert not any(row["complete"] for row in rows.values())


def test_an_attempt_failing_while_following_its_batch_is_resumed_and_counted_once(
    rig: Rig,
) -> None:
    """Case 14d: GetModelInvocationJob answers 500 past the SDK's retries while step 1's batch runs.

    The attempt ends failed with its batch running; the batch's reservations stay
    held as one unknown call (``batch:<token>``), which accounting counts once the
    batch has ended. The retry resumes the batch (no second submission) and gives
    its records their outputs at no charge, then submits step 2 under its own lease.
    """
    _, api = rig.services(generators=1, overrides={"generator": BATCH_SETTINGS})
    rig.emulator.configure(latency_ms=20, batch_delay_ms=30_000)
    before = rig.emulator.batch_jobs()["submissions"]
    started = time.monotonic()
    job = submit(api, rig.seeds, 100, "5", template=CHEAP, mode="batch", partition_size=100)
    wait_until(lambda: running(rig, job["id"], "q"), what="step q's batch to run", timeout=60)
    rig.emulator.configure(batch_status_errors=SDK_ATTEMPTS)
    wait_until(
        lambda: rig.mongo["partitions"].find_one({"job_id": job["id"], "failures": 1}),
        what="the attempt following the batch to fail",
        timeout=60,
    )
    assert running(rig, job["id"], "q"), "the batch ended before its attempt failed"
    rig.emulator.configure(batch_delay_ms=2000)  # step a's batch, submitted by the retry
    final = rig.final(job)
    counters = rig.count("attempt failed while following its batch", job, started)
    assert final["status"] == "COMPLETED", final
    counters.assert_zero()
    assert counters.records == 100
    assert rig.emulator.batch_jobs()["submissions"] - before == 2  # q once, a once
    paid = paid_outputs(rig, job["id"])  # each billed once
    assert len(paid) == 200
    rows = assert_paid_outputs_exported(rig, final, paid, STEPS)
    assert all(row["complete"] for row in rows.values())
    token = rig.mongo["batch_invocations"].find_one({"job_id": job["id"], "step": "q"})["_id"]
    leases = rig.mongo["leases"].find({"job_id": job["id"]})
    held = [lease for lease in leases if "reconcile" in lease]
    assert [lease["reconcile"]["calls"] for lease in held] == [[f"batch:{token}"]], held
    assert 0 < int(held[0]["settled"]) < counters.spent  # the batch of step q, counted there


def test_cancel_after_a_steps_batch_was_read_exports_its_outputs_as_incomplete(rig: Rig) -> None:
    """Case 14e: step 1's batch read and applied, step 2's running; the job is cancelled."""
    _, api = rig.services(generators=1, overrides={"generator": BATCH_SETTINGS})
    rig.emulator.configure(latency_ms=20, batch_delay_ms=3000)
    started = time.monotonic()
    job = submit(api, rig.seeds, 100, "5", template=CHEAP, mode="batch", partition_size=100)
    wait_until(lambda: running(rig, job["id"], "q"), what="step q's batch to run", timeout=60)
    rig.emulator.configure(batch_delay_ms=60_000)  # step a's batch runs long
    wait_until(lambda: running(rig, job["id"], "a"), what="step a's batch to run", timeout=60)
    api.cancel(job["id"])
    final = rig.final(job)
    counters = rig.count("cancel after step 1's batch was read (batch)", job, started)
    assert final["status"] == "CANCELLED", final
    counters.assert_zero()
    ended = {j["tags"]["step"]: j["status"] for j in invocation_jobs(rig, job["id"])}
    assert ended == {"q": "Completed", "a": "Stopped"}, ended
    paid = paid_outputs(rig, job["id"])
    assert sum(step == "q" for _, step in paid) == 100
    rows = assert_paid_outputs_exported(rig, final, paid, STEPS)
    assert len(rows) == 100
    assert sum(row["complete"] for row in rows.values()) == sum(s == "a" for _, s in paid)
