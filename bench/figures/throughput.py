"""Throughput efficiency: a one-step job's records/s against the model's limit.

The limit is concurrency / latency (32 calls of 200 ms: 160 records/s). The
rate is the job's records over the time from just before ``POST /jobs`` until
the scheduler counts the last record done, so everything the platform adds
(start-up, dispatch, writing parts, counting) is inside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench import stats
from bench.jobs import ONE_STEP, Workload, calls_of, prepare, submit, wait_final, wait_records
from bench.plan import Plan
from bench.report import Figure, Target
from bench.rig import Rig

WARMUP_RECORDS = 64
WARMUP_PARTITION = 8


@dataclass(frozen=True, slots=True)
class RateRun:
    """One job's timing."""

    records: int
    seconds: float
    first_call_s: float
    """From submitting to the first model call."""
    last_call_s: float
    """From submitting to the end of the last model call."""
    in_flight: float
    """Model calls in flight on average between the first call's start and the last's end."""

    @property
    def rate(self) -> float:
        """Records per second."""
        return self.records / self.seconds

    def details(self) -> dict[str, Any]:
        """As JSON."""
        return {
            "records": self.records,
            "seconds": round(self.seconds, 3),
            "records_per_s": round(self.rate, 1),
            "first_call_s": round(self.first_call_s, 3),
            "last_call_end_s": round(self.last_call_s, 3),
            "calls_in_flight": round(self.in_flight, 1),
        }


def warm_up(rig: Rig, work: Workload) -> None:
    """A small job of many partitions, so every generator has made calls before timing."""
    job, _ = submit(rig, work, WARMUP_RECORDS, partition_size=WARMUP_PARTITION)
    wait_final(rig, job, 120)


def timed_job(
    rig: Rig,
    work: Workload,
    records: int,
    timeout: float = 600,
    partition_size: int | None = None,
) -> RateRun:
    """Run one job to its last record; its timing."""
    rig.emulator.clear_billing()
    job, submitted = submit(rig, work, records, partition_size=partition_size)
    done = wait_records(rig, job, records, timeout)
    wait_final(rig, job, timeout)
    calls = calls_of(rig, job)
    first = min(c.started for c in calls)
    last = max(c.ended for c in calls)
    busy = stats.mean_in_flight([(c.started, c.ended) for c in calls], first, last)
    return RateRun(records, done - submitted, first - submitted, last - submitted, busy)


def run(rig: Rig, plan: Plan) -> list[Figure]:
    """The median efficiency of ``plan.runs`` jobs."""
    rig.use_generators(1, plan.throughput_concurrency)
    rig.latency(plan.throughput_latency_ms)
    work = prepare(rig, "bench-throughput", ONE_STEP)
    warm_up(rig, work)
    runs = [timed_job(rig, work, plan.throughput_records) for _ in range(plan.runs)]
    efficiencies = [r.rate / plan.throughput_limit for r in runs]
    return [
        Figure(
            "throughput efficiency",
            stats.median(efficiencies),
            Target(">=", 0.97),
            runs=[round(e, 4) for e in efficiencies],
            details={
                "limit_records_per_s": plan.throughput_limit,
                "latency_ms": plan.throughput_latency_ms,
                "concurrency": plan.throughput_concurrency,
                "jobs": [r.details() for r in runs],
            },
            note=f"{plan.throughput_records} records, one step, model latency "
            f"{plan.throughput_latency_ms:g} ms, one generator of concurrency "
            f"{plan.throughput_concurrency}: records/s from POST /jobs to the last record "
            f"counted, over {plan.throughput_limit:g}/s",
        )
    ]
