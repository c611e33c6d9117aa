"""The model misbehaves, and the budget is raced (cases 6, 7, 8)."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import pytest

from palette.devstack.faults import BILLED_TIMEOUT
from tests.faults.conftest import FAULT_CASE_TIMEOUT, Rig
from tests.faults.harness import budget_for, submit
from tests.integration.jobs import PRICING

pytestmark = [pytest.mark.faults, pytest.mark.timeout(FAULT_CASE_TIMEOUT + 240)]


def billed_by_lease(rig: Rig, job_id: str) -> dict[str, int]:
    """The exact cost the emulator billed for each lease of the job."""
    cost: dict[str, int] = defaultdict(int)
    for call in rig.emulator.billing(job_id=job_id):
        price = PRICING.cost(call["model_id"], call["input_tokens"], call["output_tokens"])
        cost[call["request_metadata"]["lease_id"]] += price
    return dict(cost)


@pytest.mark.quick
def test_throttling_and_unavailable_model(rig: Rig) -> None:
    """Case 6: 30% of calls throttled, 5% answered 503: the job completes, exactly billed.

    Every billed call carries a lease that accounting granted before the call,
    and each lease settled at exactly what the emulator billed under it.
    """
    _, api = rig.services(generators=2)
    rig.emulator.reset_stats()
    rig.emulator.configure(throttle_rate=0.30, unavailable_rate=0.05)
    started = time.monotonic()
    job = submit(api, rig.seeds, 200, "5")
    final = rig.final(job)
    counters = rig.count("throttle 30% + 503 5%", job, started)
    stats = rig.emulator.stats()
    assert final["status"] == "COMPLETED", final
    counters.assert_zero()
    assert stats.get("ThrottlingException", 0) > 30, stats
    assert stats.get("ServiceUnavailableException", 0) > 0, stats
    leases = {doc["_id"]: doc for doc in rig.mongo["leases"].find({"job_id": job["id"]})}
    for lease_id, cost in billed_by_lease(rig, job["id"]).items():
        assert lease_id in leases, f"a call billed under {lease_id}, a lease never granted"
        assert leases[lease_id]["closed"], lease_id
        assert int(leases[lease_id]["settled"]) == cost, (lease_id, leases[lease_id], cost)


@pytest.mark.parametrize(
    "mode",
    [
        pytest.param("error", id="error"),
        pytest.param("drop", id="dropped-connection"),
        pytest.param("hang", id="hang-past-read-timeout"),
    ],
)
def test_billed_but_unanswered_calls(mode: str, rig: Rig) -> None:
    """Case 7: the model ran and was billed, but the answer never came back.

    The ledger still covers each such call: the job's settled spend equals
    the bill exactly and never exceeds the budget.
    """
    _, api = rig.services(generators=2)
    rig.emulator.reset_stats()
    rig.emulator.configure(billed_timeout_rate=0.08, billed_timeout_mode=mode, hang_ms=8000)
    started = time.monotonic()
    job = submit(api, rig.seeds, 160, "5")
    final = rig.final(job)
    counters = rig.count(f"billed timeouts 8% ({mode})", job, started)
    stats = rig.emulator.stats()
    assert final["status"] == "COMPLETED", final
    assert stats.get(BILLED_TIMEOUT, 0) > 0, stats
    counters.assert_zero()


def per_record_picos(rig: Rig, api: Any) -> int:
    """What one record costs on this emulator, measured with a small job."""
    probe = submit(api, rig.seeds, 20, "1")
    rig.final(probe)
    doc = rig.mongo["ledgers"].find_one({"_id": probe["id"]})
    assert doc is not None
    return int(doc["spent"]) // 20


@pytest.mark.parametrize("runs", [pytest.param(3, id="3-runs"), pytest.param(20, id="20-runs")])
def test_budget_race(runs: int, rig: Rig) -> None:
    """Case 8: 64 concurrent model calls against a budget for 20 records, ``runs`` times."""
    overrides = {
        "generator": {"PALETTE_GENERATOR_CONCURRENCY": "64", "PALETTE_GENERATOR_PART_SIZE": "4"},
        "gateway": {"PALETTE_GATEWAY_MAX_ACTIVE_JOBS": "32"},
        "scheduler": {"PALETTE_SCHEDULER_PARTITION_SIZE": "16", "PALETTE_SCHEDULER_WINDOW": "8"},
    }
    _, api = rig.services(generators=1, overrides=overrides)
    rig.emulator.configure(latency_ms=100, jitter_ms=50)
    budget = budget_for(20, per_record_picos(rig, api))
    jobs = []
    for _ in range(runs):
        started = time.monotonic()
        job = submit(api, rig.seeds, 200, budget)
        jobs.append((job, started))
    for number, (job, started) in enumerate(jobs, 1):
        final = rig.final(job)
        counters = rig.count(f"budget race run {number}/{runs}", job, started)
        assert final["status"] == "BUDGET_EXCEEDED", final
        counters.assert_zero()
        assert counters.records >= 10, "the budget bought too few records"
