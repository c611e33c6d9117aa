"""Quota efficiency with 1 and 4 generators, and their throttled share.

The emulator enforces a quota on the bench model whose tokens per minute bind
(its requests per minute allow twice as many calls) and the system's quota
table says the same. A one-step job of ``plan.quota_records`` records runs with
one generator, then with four (each of concurrency ``plan.quota_concurrency``:
together they ask for several times the quota). Efficiency: the quota tokens
used per minute over the job's steady part (``bench.quota``), counted by the
emulator, over the TPM quota. Throttled share: requests the emulator throttled
over all requests, in both jobs together.
"""

from __future__ import annotations

from bench import quota
from bench.jobs import ONE_STEP, prepare
from bench.plan import Plan
from bench.quota_jobs import QuotaRun, enforce, quota_job, quota_table, use_system, warm_up
from bench.report import Figure, Target
from bench.rig import Rig

EFFICIENCY = 0.95
THROTTLED_SHARE = 0.02


def setting(plan: Plan) -> str:
    """The conditions, in words (the figures' notes)."""
    return (
        f"{plan.quota_records} one-step records, model latency {plan.quota_latency_ms:g} ms "
        f"+ up to {plan.quota_jitter_ms:g} ms jitter, emulator quota TPM {plan.quota_tpm:,} "
        f"(binds) and RPM {plan.quota_rpm:,}, the same in the system's quota table, generators "
        f"of concurrency {plan.quota_concurrency}"
    )


def run(rig: Rig, plan: Plan) -> list[Figure]:
    """Efficiency per generator count, and the throttled share of all their requests."""
    rig.latency(plan.quota_latency_ms, plan.quota_jitter_ms)
    table = quota_table(rig, "bench", plan.quota_rpm, plan.quota_tpm)
    work = prepare(rig, "bench-quota", ONE_STEP)
    runs: dict[int, QuotaRun] = {}
    try:
        for count in plan.quota_generators:
            use_system(rig, plan, table, count, plan.quota_concurrency)
            warm_up(rig, work)
            enforce(rig, plan.quota_rpm, plan.quota_tpm)
            runs[count] = quota_job(rig, work, plan.quota_records, plan.quota_tpm, 900)
    finally:
        rig.emulator.clear_quotas()
    figures = [
        Figure(
            f"quota efficiency, {count} generator{'s' if count > 1 else ''}",
            job.efficiency,
            Target(">=", EFFICIENCY),
            runs=[round(job.efficiency, 4)],
            details=job.details(),
            note=f"{setting(plan)}: quota tokens per minute over the steady part of the job "
            f"(counted by the emulator) / TPM; {count} generator process(es)",
            broken=job.broken,
        )
        for count, job in runs.items()
    ]
    counts = {count: quota.attempts(job.rows) for count, job in runs.items()}
    throttled = sum(t for t, _ in counts.values())
    attempts = sum(a for _, a in counts.values())
    figures.append(
        Figure(
            "quota throttled share",
            throttled / attempts if attempts else float("nan"),
            Target("<=", THROTTLED_SHARE),
            runs=[round(t / a, 4) for t, a in counts.values() if a],
            details={"throttled": throttled, "attempts": attempts},
            note=f"requests the emulator throttled / all requests, in the "
            f"{' and '.join(str(c) for c in runs)}-generator jobs of quota efficiency",
            broken=", ".join(job.broken for job in runs.values() if job.status != "COMPLETED"),
        )
    )
    return figures
