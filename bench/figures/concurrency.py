"""High concurrency: one generator of concurrency 512 on a slow model with no quota.

No quota anywhere (the emulator enforces none, the system's table has no entry
for the bench model), model latency ``plan.concurrency_latency_ms`` without
jitter, ``plan.concurrency_records`` one-step records in partitions of
``plan.concurrency_partition`` (the generator holds two, so its concurrency
can be used): records/s from ``POST /jobs`` to the last record counted, over
concurrency / latency (512 / 2 s = 256/s).

The warm-up job is as wide as the concurrency (two partitions of ``concurrency``
records, at the throughput figure's latency), so the generator's HTTP pool holds
a connection per call slot before the timed job, as a generator that has served
one job does. A generator opens each connection once; with only the quota
figures' narrow warm-up (16 connections) all but 16 of the timed job's first
wave of calls opened one as they started, and went out about a second late:
0.830 and 0.867 in two runs, against 0.893-0.909 (median 0.902 of four) with
this warm-up, on the same machine (docs/benchmarks.md).
"""

from __future__ import annotations

from bench.figures.throughput import timed_job
from bench.jobs import ONE_STEP, prepare, submit, wait_final
from bench.plan import Plan
from bench.quota_jobs import quota_table, use_system
from bench.report import Figure, Target
from bench.rig import Rig

EFFICIENCY = 0.95


def run(rig: Rig, plan: Plan) -> list[Figure]:
    """Records/s of one large job over the model's limit."""
    limit = plan.concurrency / (plan.concurrency_latency_ms / 1000.0)
    rig.emulator.clear_quotas()
    table = quota_table(rig, "unknown", None, None)
    use_system(rig, plan, table, 1, plan.concurrency)
    work = prepare(rig, "bench-concurrency", ONE_STEP)
    rig.latency(plan.throughput_latency_ms)
    warm, _ = submit(rig, work, 2 * plan.concurrency, partition_size=plan.concurrency)
    wait_final(rig, warm, 180)
    rig.latency(plan.concurrency_latency_ms)
    timing = timed_job(
        rig, work, plan.concurrency_records, partition_size=plan.concurrency_partition
    )
    return [
        Figure(
            "high concurrency efficiency",
            timing.rate / limit,
            Target(">=", EFFICIENCY),
            runs=[round(timing.rate / limit, 4)],
            details={"limit_records_per_s": limit, **timing.details()},
            note=f"{plan.concurrency_records} one-step records in partitions of "
            f"{plan.concurrency_partition}, no quota (emulator or system), model latency "
            f"{plan.concurrency_latency_ms:g} ms, one generator of concurrency "
            f"{plan.concurrency}: records/s from POST /jobs to the last record counted, "
            f"over {limit:g}/s",
        )
    ]
