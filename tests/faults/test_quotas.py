"""A model's quota drops to zero for 30 s mid-job, then comes back (cases 12, 13).

The emulator enforces the model's quota from the shipped quota table (the one
the services read), so before and after the outage the job runs as it would on
an account with that quota. The outage is the quota set to zero through the
emulator's config endpoint: every call is throttled (not billed) until it is
restored. Throttled calls are waited out: the job completes, no partition
attempt fails, and the four counters are zero.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest

from palette.common.quotas import load_quotas
from tests.faults.conftest import FAULT_CASE_TIMEOUT, Rig
from tests.faults.harness import ONE_STEP, submit
from tests.faults.test_processes import busy_generator
from tests.integration.waiting import FINAL, wait_billed, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(FAULT_CASE_TIMEOUT + 180)]

MODEL = str(ONE_STEP["steps"][0]["model"])  # type: ignore[index]
REGION = "us-east-1"
OUTAGE_SECONDS = 30.0
RECORDS = 600
LATENCY_MS = 100
QUOTA_SETTINGS = {"generator": {"PALETTE_GENERATOR_QUOTA_TABLE": "true"}}
"""The generators pace to the shipped table (the quota the emulator enforces here)."""


def table_quota() -> dict[str, Any]:
    """The model's quota as the shipped table gives it (what the services read)."""
    entry = load_quotas().quota(MODEL, REGION)
    assert entry is not None, f"the quota table has no {MODEL}"
    return {"rpm": entry.rpm, "tpm": entry.tpm}


def partition_failures(rig: Rig, job_id: str) -> int:
    """Failed attempts of the job's partitions (a lost holder is not one)."""
    return sum(int(p.get("failures", 0)) for p in rig.mongo["partitions"].find({"job_id": job_id}))


def status(rig: Rig, job_id: str) -> str:
    """The job's status now."""
    doc = rig.mongo["jobs"].find_one({"_id": job_id}, {"status": 1})
    assert doc is not None, f"no job {job_id}"
    return str(doc["status"])


def throttled_in_outage(rig: Rig, job_id: str) -> int:
    """Wait for the first call of the job throttled by the outage; how many there are."""
    return wait_until(
        lambda: len(rig.emulator.throttles(job_id=job_id)),
        what=f"a call of job {job_id} throttled by the zero quota",
        timeout=30,
        interval=0.05,
    )


def outage_case(rig: Rig, case: str, generators: int, kill_one: bool) -> None:
    """Run a job, zero its model's quota for 30 s mid-job (killing a generator), check it."""
    group, api = rig.services(generators=generators, overrides=QUOTA_SETTINGS)
    limits = table_quota()
    rig.emulator.configure(latency_ms=LATENCY_MS, jitter_ms=20)
    rig.emulator.set_quota(MODEL, **limits)
    started = time.monotonic()
    job = submit(api, rig.seeds, RECORDS, "5")
    wait_billed(rig.stack, job["id"], RECORDS // 3, timeout=120)
    rig.emulator.set_quota(MODEL, rpm=0, tpm=0)
    outage_began = time.monotonic()
    assert status(rig, job["id"]) not in FINAL, "the job ended before the outage"
    throttled_in_outage(rig, job["id"])
    if kill_one:
        victim = busy_generator(group)
        victim.kill(signal.SIGKILL)
    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - outage_began)))
    now = status(rig, job["id"])
    assert now not in FINAL, f"the job ended {now} during the outage"
    rig.emulator.set_quota(MODEL, **limits)
    final = rig.final(job)
    counters = rig.count(case, job, started)
    assert final["status"] == "COMPLETED", final
    counters.assert_zero()
    assert counters.records == RECORDS
    assert partition_failures(rig, job["id"]) == 0
    if kill_one:
        assert not victim.alive()


def test_quota_zero_for_30_s_mid_job(rig: Rig) -> None:
    """Case 12: the quota drops to zero for 30 s and comes back; the job completes."""
    outage_case(rig, "quota zero 30 s", generators=2, kill_one=False)


def test_quota_zero_for_30_s_with_a_generator_killed(rig: Rig) -> None:
    """Case 13: the same with 4 generators, one ``kill -9``'d during the outage."""
    outage_case(rig, "quota zero 30 s, 4 generators, 1 killed", generators=4, kill_one=True)
