"""Quota change: the emulator's quota halved mid-job, then restored.

The quota efficiency job with ``max(plan.quota_generators)`` generators, of
``plan.quota_change_records`` records. Once ``plan.quota_change_at`` records
are done, the emulator's quota (RPM and TPM) is halved through its config
endpoint (the system's table still says the full quota: it must notice from the
throttles), its buckets emptied (``POST /_emulator/quotas/drain``: else a client
that never used the minute the bucket stores would not meet the halved rate for
up to a minute, longer than the change lasts), and ``plan.quota_change_hold_s``
seconds later restored. For each
change: the seconds, from the first whole second after it, until the throttled
share of the rest of that phase (to the next change, or to the end of the job's
steady part) stays under 2 % (``bench.quota.recovery_seconds``). The figure is
the slower of the two; a second row counts failed partition attempts.
"""

from __future__ import annotations

import math
import time
from typing import Any

from bench import quota
from bench.figures.quota import setting
from bench.jobs import MICRO, ONE_STEP, prepare, wait_records
from bench.plan import Plan
from bench.quota_jobs import enforce, quota_job, quota_table, use_system, warm_up
from bench.report import Figure, Target
from bench.rig import Rig

BOUND = 0.02
RECOVERY_SECONDS = 10.0


def run(rig: Rig, plan: Plan) -> list[Figure]:
    """The slower recovery of the two changes, and the failed partition attempts."""
    generators = max(plan.quota_generators)
    rig.latency(plan.quota_latency_ms, plan.quota_jitter_ms)
    table = quota_table(rig, "bench", plan.quota_rpm, plan.quota_tpm)
    work = prepare(rig, "bench-quota-change", ONE_STEP)
    use_system(rig, plan, table, generators, plan.quota_concurrency)
    warm_up(rig, work)
    changes: list[float] = []
    problems: list[str] = []

    def change_quota(job_id: str) -> None:
        try:
            wait_records(rig, job_id, plan.quota_change_at, 600)
        except TimeoutError as exc:
            problems.append(f"no change made: {exc}")
            return
        changes.append(time.time())
        rig.emulator.set_quota(MICRO, rpm=plan.quota_rpm / 2, tpm=plan.quota_tpm / 2)
        rig.emulator.drain_quota(MICRO)
        time.sleep(plan.quota_change_hold_s)
        changes.append(time.time())
        rig.emulator.set_quota(MICRO, rpm=plan.quota_rpm, tpm=plan.quota_tpm)

    try:
        enforce(rig, plan.quota_rpm, plan.quota_tpm)
        job = quota_job(
            rig, work, plan.quota_change_records, plan.quota_tpm, 900, during=change_quota
        )
    finally:
        rig.emulator.clear_quotas()
    steady = job.window
    last = max((r.t + 1 for r in job.rows if r.admitted), default=0)
    phases: list[dict[str, Any]] = []
    worst = float("nan")
    if len(changes) == 2:
        bounds = [math.ceil(changes[0]), math.ceil(changes[1]), steady.end if steady else last]
        delays = []
        for name, start, end in zip(("halved", "restored"), bounds, bounds[1:], strict=False):
            phase = quota.Window(start, min(end, last))
            if phase.length <= quota.MIN_REST_SECONDS:
                problems.append(f"the job's requests ended before the quota was {name}")
                continue
            delay = quota.recovery_seconds(job.rows, phase, BOUND)
            if delay is None:
                problems.append(f"throttled share never under 2 % while {name}")
            delays.append(phase.length if delay is None else delay)
            phases.append(
                {
                    "phase": name,
                    "seconds": phase.length,
                    "recovered_after_s": delay,
                    "throttled_share": round(quota.throttled_share(job.rows, phase), 4),
                    "tokens_per_minute": round(quota.used_per_minute(job.rows, phase)),
                }
            )
        worst = float(max(delays, default=math.nan))
    details = {**job.details(), "phases": phases}
    problems += [job.broken] if job.status != "COMPLETED" else []
    note = (
        f"{setting(plan)}, {generators} generators, {plan.quota_change_records} records: "
        f"quota halved (its store emptied) at {plan.quota_change_at} records done, restored "
        f"{plan.quota_change_hold_s:g} s later; seconds until the throttled share of the "
        "rest of each phase stays under 2 % (the slower change)"
    )
    return [
        Figure(
            "quota change, recovery",
            worst,
            Target("<=", RECOVERY_SECONDS),
            unit="s",
            details=details,
            note=note,
            broken="; ".join(problems),
        ),
        Figure(
            "quota change, partitions failed",
            float(job.failures),
            Target("==", 0),
            details={"job_id": job.job_id, "status": job.status},
            note="failed partition attempts of the quota change job",
            broken="" if job.status == "COMPLETED" else f"job {job.status}",
        ),
    ]
