"""Gateway latency under load while a job runs.

A separate process (``bench.workers.gateway_load``) asks ``GET /jobs/{id}``
and ``GET /jobs`` alternately at ``plan.gateway_rate`` requests/s for
``plan.gateway_seconds`` s, as the user of the running job (and of the stop
figure's jobs, so its job list is a full page when that figure ran first).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import psutil

from bench import stats
from bench.figures.overhead import cpu_seconds
from bench.jobs import ONE_STEP, prepare, submit, wait_calling, wait_final
from bench.plan import Plan
from bench.report import Figure, Target
from bench.rig import Rig

USER = "bench-stops"
MARGIN_SECONDS = 5.0
BACKGROUND_SECONDS = 2.0
"""How long the job runs alone first, to see what the gateway and database use for it."""


def run(rig: Rig, plan: Plan) -> list[Figure]:
    """p50, p99 and errors of the requests."""
    rig.use_generators(1, plan.throughput_concurrency)
    rig.latency(plan.throughput_latency_ms)
    work = prepare(rig, USER, ONE_STEP)
    records = int(plan.throughput_limit * (plan.gateway_seconds + MARGIN_SECONDS))
    job, _ = submit(rig, work, records)
    wait_calling(rig, job, 60)
    assert rig.stack is not None
    assert rig.stack.database is not None
    watched = {
        "gateway": rig.service_processes()["gateway"],
        "database": psutil.Process(rig.stack.database.pid),
    }
    idle = cpu_seconds(watched)
    time.sleep(BACKGROUND_SECONDS)
    before = cpu_seconds(watched)
    background = {
        name: round((before[name] - idle[name]) / BACKGROUND_SECONDS, 3) for name in watched
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.workers.gateway_load",
            "--url",
            rig.gateway_url,
            "--job",
            job,
            "--rate",
            str(plan.gateway_rate),
            "--seconds",
            str(plan.gateway_seconds),
        ],
        env={**os.environ, "PALETTE_BENCH_TOKEN": rig.token(USER)},
        capture_output=True,
        text=True,
        check=True,
        timeout=plan.gateway_seconds * 3 + 60,
    )
    result = json.loads(done.stdout)
    after = cpu_seconds(watched)
    still_running = rig.db["jobs"].find_one({"_id": job}, {"status": 1})["status"] == "RUNNING"
    rig.api(USER).cancel(job)
    wait_final(rig, job, 120)
    by_path = result["latencies_ms"]
    every = [v for values in by_path.values() for v in values]
    page = rig.api(USER).http.get("/jobs").json()["items"]
    details = {
        "requests": result["requests"],
        "achieved_rate": round(result["requests"] / result["seconds"], 1),
        "cpu_ms_per_request": {
            name: round((after[name] - before[name]) / result["requests"] * 1000, 2)
            for name in watched
        }
        | {"load_process": round(result["load_cpu_s"] / result["requests"] * 1000, 2)},
        "cpu_share_before_the_load": background,
        "schedule_late_p99_ms": round(stats.percentile(result["late_ms"], 99), 2),
        "job_ran_throughout": still_running,
        "jobs_per_page": len(page),
        "by_path": {
            path: {
                "p50_ms": round(stats.percentile(values, 50), 2),
                "p99_ms": round(stats.percentile(values, 99), 2),
                "max_ms": round(max(values), 2),
            }
            for path, values in by_path.items()
            if values
        },
        "error_samples": result["errors"][:5],
    }
    what = (
        f"GET /jobs/{{id}} and GET /jobs ({len(page)} jobs a page) alternately at "
        f"{plan.gateway_rate:g}/s for {plan.gateway_seconds:g} s from another process while "
        f"a job runs ({plan.throughput_concurrency} calls in flight)"
    )
    return [
        Figure(
            "gateway latency p50",
            stats.percentile(every, 50) if every else None,
            Target("report"),
            unit="ms",
            details=details,
            note=what,
        ),
        Figure(
            "gateway latency p99",
            stats.percentile(every, 99) if every else None,
            Target("<=", 25),
            unit="ms",
        ),
        Figure("gateway errors", float(len(result["errors"])), Target("==", 0)),
    ]
