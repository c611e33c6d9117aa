"""Overshoot: jobs whose budget runs out half way must never spend more than it.

A calibration job gives the mean cost of a two-step record; then
``plan.overshoot_jobs`` jobs, each its own user, run at once on one generator
of concurrency 64 with budgets of 40-60 % of their records' cost. Settled spend
is both what the ledger settled and what the emulator billed (the cloud bill);
the figure is the largest amount either exceeds its budget by (0 when none
does). Each job ends ``BUDGET_EXCEEDED``: its stop latency is measured from
the moment the broker carried its ``BudgetExceeded`` to the start of its last
model call.
"""

from __future__ import annotations

from typing import Any

from bench.figures.stops import latency_figure
from bench.jobs import TWO_STEPS, calls_of, prepare, submit, wait_final
from bench.plan import Plan
from bench.report import Figure, Target
from bench.rig import Rig
from palette.common.money import picos_to_usd
from palette.common.pricing import PricingTable

CALIBRATION_RECORDS = 40
JITTER_SHARE = 1.0
"""Latency jitter as a share of the latency: calls finish out of order."""


def budget_fractions(jobs: int) -> list[float]:
    """Budgets from 40 % to 60 % of each job's cost, spread evenly."""
    if jobs == 1:
        return [0.5]
    return [0.4 + 0.2 * k / (jobs - 1) for k in range(jobs)]


def billed_picos(calls: list[Any], pricing: PricingTable) -> int:
    """What the emulator billed for these calls, priced exactly."""
    return sum(pricing.cost(c.model, c.input_tokens, c.output_tokens) for c in calls)


def run(rig: Rig, plan: Plan) -> list[Figure]:
    """The overshoot figure and the budget-exhausted stop latency."""
    pricing = PricingTable.load()
    rig.use_generators(1, plan.overshoot_concurrency)
    rig.latency(plan.overshoot_latency_ms, plan.overshoot_latency_ms * JITTER_SHARE)
    rig.emulator.clear_billing()
    calibration = prepare(rig, "bench-overshoot-calibration", TWO_STEPS)
    job, _ = submit(rig, calibration, CALIBRATION_RECORDS)
    wait_final(rig, job, 120)
    record_picos = billed_picos(calls_of(rig, job), pricing) / CALIBRATION_RECORDS

    records = plan.overshoot_records
    works = [prepare(rig, f"bench-overshoot-{k}", TWO_STEPS) for k in range(plan.overshoot_jobs)]
    jobs: dict[str, float] = {}
    for work, fraction in zip(works, budget_fractions(len(works)), strict=True):
        budget_usd = picos_to_usd(int(fraction * records * record_picos))
        job, _ = submit(rig, work, records, budget_usd=str(budget_usd))
        jobs[job] = fraction
    overshoots: list[int] = []
    rows: list[dict[str, Any]] = []
    lags: dict[str, float] = {}
    mismatched = 0
    for job, fraction in jobs.items():
        final = wait_final(rig, job, 300)
        ledger = rig.db["ledgers"].find_one({"_id": job}) or {}
        calls = calls_of(rig, job)
        billed = billed_picos(calls, pricing)
        settled = int(ledger.get("spent", 0)) + sum(ledger.get("pending", {}).values())
        budget = int(final["budget_picos"])
        overshoots.append(max(billed, settled) - budget)
        mismatched += billed != settled
        if final["status"] == "BUDGET_EXCEEDED" and rig.tap is not None:
            exceeded = rig.tap.exceeded.get(job)
            if exceeded is not None:
                lags[job] = max(c.started for c in calls) - exceeded
        rows.append(
            {
                "job": job,
                "status": final["status"],
                "budget_fraction": round(fraction, 3),
                "records_made": final.get("records_done"),
                "budget_picos": budget,
                "billed_picos": billed,
                "ledger_picos": settled,
            }
        )
    worst = max(overshoots)
    return [
        Figure(
            "overshoot, max(settled - budget, 0)",
            float(max(worst, 0)),
            Target("==", 0),
            unit="pUSD",
            details={
                "closest_to_budget_picos": worst,
                "ledger_differs_from_bill": mismatched,
                "mean_record_picos": round(record_picos),
                "jobs": rows,
            },
            note=f"{plan.overshoot_jobs} jobs of {records} two-step records at once, budgets "
            f"for 40-60 % of them, one generator of concurrency {plan.overshoot_concurrency}, "
            f"latency {plan.overshoot_latency_ms:g} ms + up to 100 % jitter; settled = the "
            "ledger and the emulator's bill (picodollars)",
        ),
        latency_figure(
            f"stop latency, budget exhausted (p99 of {len(lags)})",
            lags,
            "the overshoot jobs: BudgetExceeded on the broker -> start of the job's last call",
        ),
    ]
