"""Memory growth and export speed, from a small and a ten times larger job.

Each job runs on a fresh generator process (model latency 0) through its
JSONL export; the generator's peak RSS is the kernel's high-water mark
(``VmHWM``). Then each format is exported again by the generator's own code
in a fresh process (``bench.workers.export_probe``), which reports the
export's speed and peak RSS; for the large job it also times the format
writer alone and pyarrow writing the same table directly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.jobs import ONE_STEP, prepare, submit, wait_final
from bench.plan import Plan
from bench.report import Figure, Target
from bench.rig import Rig

FORMATS = ("jsonl", "parquet", "csv")
PARTITION_SIZE = 1_000
"""The memory jobs' partition size (a job parameter): a tenth of the partitions the
default of 100 makes, so the dev stack's database (SecantusDB, a Python server)
is not what bounds how long a 100,000-record job takes. The large job still has
ten times the partitions, parts and records of the small one."""
GROWTH_TARGET = 1.2
SECONDS_PER_RECORD_LIMIT = 0.05


def peak_rss_mib(pid: int) -> float:
    """A live process's peak resident set size (``VmHWM``), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="utf-8").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def probe(rig: Rig, job: str, fmt: str, compare: bool) -> dict[str, Any]:
    """One export of ``job`` as ``fmt`` in a fresh process."""
    assert rig.stack is not None
    argv = [sys.executable, "-m", "bench.workers.export_probe", "--job", job, "--format", fmt]
    argv += ["--key", f"bench/{job}/dataset.{fmt}"]
    if compare:
        argv.append("--compare")
    done = subprocess.run(
        argv,
        env={**os.environ, **rig.stack.env()},
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def one_size(rig: Rig, plan: Plan, records: int, compare: bool) -> dict[str, Any]:
    """Generate ``records`` on a fresh generator; its peak RSS and each format's export."""
    rig.fresh_database()
    [generator] = rig.use_generators(1, plan.throughput_concurrency, fresh=True)
    assert generator.pid is not None
    work = prepare(rig, f"bench-memory-{records}", ONE_STEP)
    started = time.monotonic()
    job, _ = submit(rig, work, records, partition_size=PARTITION_SIZE)
    final = wait_final(rig, job, max(120.0, records * SECONDS_PER_RECORD_LIMIT))
    took = time.monotonic() - started
    if final["status"] != "COMPLETED":
        raise RuntimeError(f"memory job {job} ended {final['status']}: {final.get('error')}")
    return {
        "job": job,
        "job_seconds": round(took, 1),
        "generator_peak_rss_mib": round(peak_rss_mib(generator.pid), 1),
        "exports": {fmt: probe(rig, job, fmt, compare) for fmt in FORMATS},
    }


def run(rig: Rig, plan: Plan) -> list[Figure]:
    """Growth of the generator's and the export's peak RSS; each format's export speed."""
    rig.latency(0)
    small = one_size(rig, plan, plan.memory_small, compare=False)
    large = one_size(rig, plan, plan.memory_large, compare=True)
    sizes = f"{plan.memory_large:,} vs {plan.memory_small:,} records"
    generator_growth = large["generator_peak_rss_mib"] / small["generator_peak_rss_mib"]
    export_growth = {
        fmt: large["exports"][fmt]["peak_rss_mib"] / small["exports"][fmt]["peak_rss_mib"]
        for fmt in FORMATS
    }
    figures = [
        Figure(
            "memory growth, generator",
            generator_growth,
            Target("<=", GROWTH_TARGET),
            unit="x",
            details={
                "small_mib": small["generator_peak_rss_mib"],
                "large_mib": large["generator_peak_rss_mib"],
                "job_seconds": {"small": small["job_seconds"], "large": large["job_seconds"]},
                "partition_size": PARTITION_SIZE,
            },
            note=f"peak RSS (VmHWM) of a fresh generator that made and exported {sizes} "
            f"(partitions of {PARTITION_SIZE:,}, model latency 0)",
        ),
        Figure(
            "memory growth, export",
            max(export_growth.values()),
            Target("<=", GROWTH_TARGET),
            unit="x",
            details={
                fmt: {
                    "small_mib": round(small["exports"][fmt]["peak_rss_mib"], 1),
                    "large_mib": round(large["exports"][fmt]["peak_rss_mib"], 1),
                    "growth": round(growth, 3),
                }
                for fmt, growth in export_growth.items()
            },
            note=f"peak RSS of a fresh process exporting {sizes}, the largest of the formats",
        ),
    ]
    for fmt in FORMATS:
        result = large["exports"][fmt]
        records = result["records"]
        rate = records / result["export_s"]
        details = {
            "records": records,
            "bytes": result["bytes"],
            "export_s": round(result["export_s"], 2),
            "writer_only_records_per_s": round(records / result["writer_s"]),
        }
        note = (
            f"{records:,} records from S3 parts to an S3 multipart upload; the format writer "
            f"alone {records / result['writer_s']:,.0f}/s"
        )
        if "pyarrow_s" in result:
            direct = records / result["pyarrow_s"]
            details["pyarrow_direct_records_per_s"] = round(direct)
            note += f", pyarrow writing the same table directly {direct:,.0f}/s"
        else:
            note += " (pyarrow has no JSONL writer)"
        figures.append(
            Figure(
                f"export speed, {fmt}",
                rate,
                Target("report"),
                unit="records/s",
                details=details,
                note=note,
            )
        )
    return figures
