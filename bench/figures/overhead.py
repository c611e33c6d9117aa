"""Platform overhead: the four services' CPU per record over a bare client's CPU per call.

With the model answering at once (latency 0), a one-step job's records each
cost one Converse call. The services' CPU time (user + system of every service
process and its children, from just before ``POST /jobs`` until the job is complete and
exported) per record is divided by the CPU time per call of a bare loop of the
same boto3 calls to the same emulator, measured right before, in the same run.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from typing import Any

import psutil

from bench import stats
from bench.jobs import ONE_STEP, SEEDS, prepare, submit, wait_final
from bench.plan import Plan
from bench.report import Figure, Target
from bench.rig import Rig

TIMEOUT = 600


def cpu_seconds(processes: dict[str, psutil.Process]) -> dict[str, float]:
    """User + system CPU seconds of each process and its children, live or ended.

    A generator renders slow templates in child processes of its own.
    """
    return {name: _with_children(process) for name, process in processes.items()}


def _with_children(process: psutil.Process) -> float:
    times = process.cpu_times()
    total = times.user + times.system + times.children_user + times.children_system
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += sum(child.cpu_times()[:2])
    return total


def bare_loop(rig: Rig, calls: int) -> dict[str, Any]:
    """Run ``bench.workers.converse_loop`` against the rig's emulator."""
    assert rig.stack is not None
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.workers.converse_loop",
            "--endpoint",
            rig.stack.bedrock_endpoint_url,
            "--calls",
            str(calls),
            "--template",
            json.dumps(ONE_STEP),
            "--seeds",
            str(SEEDS),
        ],
        env={**os.environ, **rig.stack.env()},
        capture_output=True,
        text=True,
        check=True,
        timeout=TIMEOUT,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def run(rig: Rig, plan: Plan) -> list[Figure]:
    """The median ratio of ``plan.runs`` side-by-side pairs (bare loop, then job)."""
    rig.use_generators(1, plan.throughput_concurrency)
    rig.latency(0)
    work = prepare(rig, "bench-overhead", ONE_STEP)
    job, _ = submit(rig, work, 200)  # warm-up
    wait_final(rig, job, TIMEOUT)
    ratios: list[float] = []
    pairs: list[dict[str, Any]] = []
    records = plan.overhead_records
    for _ in range(plan.runs):
        bare = bare_loop(rig, records)
        per_call = bare["cpu_s"] / bare["calls"]
        processes = rig.service_processes()
        before = cpu_seconds(processes)
        job, _ = submit(rig, work, records)
        final = wait_final(rig, job, TIMEOUT)
        after = cpu_seconds(processes)
        if final["status"] != "COMPLETED":
            raise RuntimeError(f"overhead job {job} ended {final['status']}: {final.get('error')}")
        used = {name: after[name] - before[name] for name in before}
        per_record = sum(used.values()) / records
        ratios.append(per_record / per_call)
        pairs.append(
            {
                "bare_ms_per_call": round(per_call * 1000, 3),
                "services_ms_per_record": round(per_record * 1000, 3),
                "by_service_ms_per_record": {
                    name: round(value / records * 1000, 3) for name, value in used.items()
                },
                "ratio": round(per_record / per_call, 3),
            }
        )
    return [
        Figure(
            "platform overhead",
            stats.median(ratios),
            Target("<=", 1.3),
            runs=[round(r, 3) for r in ratios],
            details={"records": records, "pairs": pairs},
            note=f"model latency 0, {records} one-step records: CPU of all four services per "
            "record over the CPU per call of a bare boto3 Converse loop, measured side by side",
        )
    ]
