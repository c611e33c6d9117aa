"""Stop latency: from the moment a job is stopped to the start of its last model call.

``DELETE /jobs/{id}`` stops a running job; the stop moment is taken just before
the request. The emulator's billing log says when each of the job's calls
arrived; a job whose last call started before the stop scores 0. The budget
kind of stop is measured by the overshoot figure's jobs (``overshoot.py``).
"""

from __future__ import annotations

import time

from bench import stats
from bench.jobs import ONE_STEP, calls_of, prepare, submit, wait_calling, wait_final
from bench.plan import Plan
from bench.report import Figure, Target
from bench.rig import Rig

TARGET_MS = 250.0


def latency_figure(name: str, lags: dict[str, float], note: str) -> Figure:
    """p99 (nearest rank) of the stops' lags in ms, negative lags counted as 0."""
    values = [max(0.0, lag) * 1000 for lag in lags.values()]
    return Figure(
        name,
        stats.percentile(values, 99) if values else None,
        Target("<=", TARGET_MS),
        unit="ms",
        runs=[round(v, 1) for v in values],
        details={
            "stops": len(values),
            "median_ms": round(stats.median(values), 1) if values else None,
            "raw_lag_ms": {job: round(lag * 1000, 1) for job, lag in lags.items()},
        },
        note=note,
    )


def run(rig: Rig, plan: Plan) -> list[Figure]:
    """Stop ``plan.stops`` running jobs with DELETE, one after another."""
    rig.use_generators(1, plan.throughput_concurrency)
    rig.latency(plan.throughput_latency_ms)
    rig.emulator.clear_billing()
    work = prepare(rig, "bench-stops", ONE_STEP)
    api = rig.api(work.user)
    stopped: dict[str, float] = {}
    for _ in range(plan.stops):
        job, _ = submit(rig, work, plan.stop_records)
        wait_calling(rig, job, 60)
        time.sleep(plan.stop_after_s)
        stopped[job] = time.time()
        api.delete(job)
    lags: dict[str, float] = {}
    for job, at in stopped.items():
        final = wait_final(rig, job, 120)
        if final["status"] != "CANCELLED":
            raise RuntimeError(f"job {job} ended {final['status']}, not CANCELLED")
        lags[job] = max(c.started for c in calls_of(rig, job)) - at
    return [
        latency_figure(
            f"stop latency, DELETE (p99 of {plan.stops})",
            lags,
            f"jobs of {plan.stop_records} one-step records at {plan.throughput_latency_ms:g} ms, "
            f"concurrency {plan.throughput_concurrency}, stopped {plan.stop_after_s:g} s after "
            "their first call: DELETE sent -> start of the job's last model call",
        )
    ]
