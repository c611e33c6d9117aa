"""Scale-out: the throughput job with 1, 2 and 4 generator processes of concurrency 16.

Each repetition times the three counts back to back (alternating the order
between repetitions, so a drift of the machine's load does not favour one),
and its ratios are taken within the repetition; the figure is their median.
"""

from __future__ import annotations

from typing import Any

from bench import stats
from bench.figures.throughput import timed_job
from bench.jobs import ONE_STEP, prepare, submit, wait_final
from bench.plan import Plan
from bench.report import Figure, Target
from bench.rig import Rig

TARGETS = {2: 1.95, 4: 3.8}
WARMUP_PARTITION = 8
PARTITIONS_PER_GENERATOR = 2
"""A generator holds two partitions (its prefetch): a job can keep ``window / 2``
generators busy, so the scheduler's window is set to two per generator of the
largest count, as a deployment of that size sets it (the production overlay: 8)."""


def run(rig: Rig, plan: Plan) -> list[Figure]:
    """One figure per generator count above one: its speed-up over one generator."""
    rig.latency(plan.throughput_latency_ms)
    window = PARTITIONS_PER_GENERATOR * max(plan.scaleout_generators)
    rig.configure("scheduler", {"PALETTE_SCHEDULER_WINDOW": str(window)})
    work = prepare(rig, "bench-scaleout", ONE_STEP)
    counts = plan.scaleout_generators
    speedups: dict[int, list[float]] = {g: [] for g in counts if g != counts[0]}
    reps: list[dict[str, Any]] = []
    for rep in range(plan.scaleout_runs):
        rates: dict[int, float] = {}
        jobs: dict[int, Any] = {}
        for count in counts if rep % 2 == 0 else tuple(reversed(counts)):
            rig.use_generators(count, plan.scaleout_concurrency)
            warm, _ = submit(rig, work, 16 * count, partition_size=WARMUP_PARTITION)
            wait_final(rig, warm, 120)
            timing = timed_job(rig, work, plan.scaleout_records)
            rates[count] = timing.rate
            jobs[count] = timing.details()
        for count, values in speedups.items():
            values.append(rates[count] / rates[counts[0]])
        reps.append({"records_per_s": {str(g): round(r, 1) for g, r in rates.items()}})
        reps[-1]["jobs"] = {str(g): j for g, j in jobs.items()}
    rig.configure("scheduler", {})
    limit = plan.scaleout_concurrency / (plan.throughput_latency_ms / 1000.0)
    return [
        Figure(
            f"scale-out, {count} generators",
            stats.median(values),
            Target(">=", TARGETS.get(count, float(count) * 0.9)),
            unit="x",
            runs=[round(v, 3) for v in values],
            details={"repetitions": reps, "limit_per_generator": limit, "window": window},
            note=f"{plan.scaleout_records} one-step records at "
            f"{plan.throughput_latency_ms:g} ms, generators of concurrency "
            f"{plan.scaleout_concurrency}, scheduler window {window}: records/s over one "
            "generator's, in the same repetition",
        )
        for count, values in speedups.items()
    ]
