"""Unknown quota: the quota efficiency job on a model the system has no quota for.

The system's quota table has no entry for the bench model, while the emulator
enforces the same quota as in quota efficiency: the system must find the rate
from the throttles. One generator of ``plan.quota_concurrency``; efficiency over
the job's steady part as in ``bench.figures.quota``.
"""

from __future__ import annotations

from bench.figures.quota import setting
from bench.jobs import ONE_STEP, prepare
from bench.plan import Plan
from bench.quota_jobs import enforce, quota_job, quota_table, use_system, warm_up
from bench.report import Figure, Target
from bench.rig import Rig

EFFICIENCY = 0.85


def run(rig: Rig, plan: Plan) -> list[Figure]:
    """The efficiency of one job whose model's quota the system does not know."""
    rig.latency(plan.quota_latency_ms, plan.quota_jitter_ms)
    table = quota_table(rig, "unknown", None, None)
    work = prepare(rig, "bench-unknown-quota", ONE_STEP)
    use_system(rig, plan, table, 1, plan.quota_concurrency)
    warm_up(rig, work)
    try:
        enforce(rig, plan.quota_rpm, plan.quota_tpm)
        job = quota_job(rig, work, plan.quota_records, plan.quota_tpm, 900)
    finally:
        rig.emulator.clear_quotas()
    details = job.details()
    details["throttled_share"] = round(details["throttled"] / max(1, details["attempts"]), 4)
    return [
        Figure(
            "unknown quota efficiency",
            job.efficiency,
            Target(">=", EFFICIENCY),
            runs=[round(job.efficiency, 4)],
            details=details,
            note=f"{setting(plan).replace(', the same in the system', ', none in the system')}"
            ", one generator: quota tokens per minute over the steady part / TPM",
            broken=job.broken,
        )
    ]
