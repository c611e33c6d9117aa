"""Running the quota figures' jobs: the system's quota table, the emulator's quota, the rows.

The system learns a model's quota from its quota table (``PALETTE_QUOTAS_FILE``,
``palette.common.quotas``); the emulator enforces its own, set through its
control API. A figure writes the table it wants the services to read (the
shipped one with the bench model's entry replaced or removed), gives it to the
scheduler, accounting and the generators (restarting them when it changes),
and reads what happened from the outside: the emulator's per-second quota rows
(``/_emulator/quotas/usage``), the job's document and its partitions.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import quota
from bench.jobs import MICRO, Workload, submit, wait_final
from bench.plan import Plan
from bench.rig import Rig
from palette.common.quotas import DEFAULT_QUOTAS_FILE

REGION = "us-east-1"
QUOTA_SERVICES = ("scheduler", "accounting")
"""Base services given the figure's quota table (the generators get it too)."""
GENERATOR_SETTINGS = {"PALETTE_GENERATOR_QUOTA_TABLE": "true"}
"""Pace to the table's quotas (whatever the dev stack's default for an emulator that
enforces none at start: this one enforces them once the figure sets them)."""
WARMUP_RECORDS = 32
WARMUP_PARTITION = 8


def quota_table(rig: Rig, name: str, rpm: int | None, tpm: int | None) -> Path:
    """The shipped table with the bench model's entry set to ``rpm``/``tpm`` (None: removed)."""
    data = json.loads(DEFAULT_QUOTAS_FILE.read_text(encoding="utf-8"))
    models = data["regions"][REGION]
    models.pop(MICRO, None)
    if tpm is not None:
        models[MICRO] = {
            "rpm": rpm,
            "tpm": tpm,
            "output_burndown": 1,
            "source": "make bench: the quota the emulator enforces in this figure",
            "as_of": time.strftime("%Y-%m-%d"),
        }
    path = rig.state_dir / f"quotas-{name}.json"
    path.write_text(json.dumps(data, indent=1), encoding="utf-8")
    return path


def use_system(
    rig: Rig,
    plan: Plan,
    table: Path,
    generators: int,
    concurrency: int,
) -> None:
    """Run the services on ``table`` with ``generators`` generators of ``concurrency``.

    The scheduler's window is two partitions per generator of the largest count.
    """
    window = 2 * max(plan.quota_generators)
    settings = {"PALETTE_QUOTAS_FILE": str(table)}
    rig.configure("scheduler", {**settings, "PALETTE_SCHEDULER_WINDOW": str(window)})
    rig.configure("accounting", settings)
    rig.use_generators(generators, concurrency, {**settings, **GENERATOR_SETTINGS})


def warm_up(rig: Rig, work: Workload) -> None:
    """A small job of many partitions, without an emulator quota, so every generator has called."""
    rig.emulator.clear_quotas()
    records = WARMUP_RECORDS * len(rig.generators)
    job, _ = submit(rig, work, records, partition_size=WARMUP_PARTITION)
    wait_final(rig, job, 180)


def enforce(rig: Rig, rpm: float, tpm: float) -> None:
    """Have the emulator enforce ``rpm``/``tpm`` on the bench model, its buckets full."""
    rig.emulator.remove_quota(MICRO)
    rig.emulator.set_quota(MICRO, rpm=rpm, tpm=tpm)


def partition_failures(rig: Rig, job_id: str) -> int:
    """Failed attempts of the job's partitions (a lost holder is not a failure)."""
    return sum(int(p.get("failures", 0)) for p in rig.db["partitions"].find({"job_id": job_id}))


@dataclass(frozen=True, slots=True)
class QuotaRun:
    """One job on an enforced quota, as seen from outside."""

    job_id: str
    status: str
    records_done: int
    seconds: float
    rows: list[quota.Second]
    failures: int
    tpm: float

    @property
    def window(self) -> quota.Window | None:
        """The job's steady part."""
        return quota.steady_window(self.rows, self.tpm)

    @property
    def efficiency(self) -> float:
        """Tokens per minute over the quota in the steady part (NaN without one)."""
        window = self.window
        return float("nan") if window is None else quota.efficiency(self.rows, window, self.tpm)

    @property
    def broken(self) -> str:
        """What went wrong with the job, if anything."""
        problems = []
        if self.status != "COMPLETED":
            problems.append(f"job {self.status}")
        if self.failures:
            problems.append(f"{self.failures} failed partition attempts")
        if self.window is None:
            problems.append("no steady part")
        return ", ".join(problems)

    def details(self) -> dict[str, Any]:
        """As JSON.

        ``per_second``: seconds from the first request, admitted, throttled, quota
        tokens used, the TPM bucket's lowest level.
        """
        throttled, attempts = quota.attempts(self.rows)
        window = self.window
        first = next((s.t for s in self.rows if s.admitted), None)
        return {
            "job_id": self.job_id,
            "status": self.status,
            "records_done": self.records_done,
            "seconds": round(self.seconds, 1),
            "efficiency": None if window is None else round(self.efficiency, 4),
            "steady_from_s": None if window is None or first is None else window.start - first,
            "steady_seconds": None if window is None else window.length,
            "throttled": throttled,
            "attempts": attempts,
            "partition_failures": self.failures,
            "per_second": [
                [s.t - (first or 0), s.admitted, s.throttled, s.used, s.level] for s in self.rows
            ],
        }


def quota_job(
    rig: Rig,
    work: Workload,
    records: int,
    tpm: float,
    timeout: float,
    during: Callable[[str], None] | None = None,
) -> QuotaRun:
    """Run one job to its end (``during(job_id)`` while it runs) and read its quota rows."""
    rig.emulator.clear_quota_usage()
    job, submitted = submit(rig, work, records)
    if during is not None:
        during(job)
    final = wait_final(rig, job, timeout)
    ended = time.time()
    rows = quota.seconds(rig.emulator.quota_usage(MICRO).get(MICRO, []))
    return QuotaRun(
        job_id=job,
        status=str(final["status"]),
        records_done=int(final.get("records_done", 0)),
        seconds=ended - submitted,
        rows=rows,
        failures=partition_failures(rig, job),
        tpm=tpm,
    )
