"""The price of patience: one job online at the default tier, online at flex, and in batch mode.

The same one-step job on Nova Pro (``plan.batch_records`` records, partitions of
``plan.batch_partition``, model latency 0) runs three ways, one after the
other, ``plan.runs`` times: ``mode`` online with ``service_tier`` default, online
with flex, and ``mode`` batch (each partition one Bedrock batch inference job,
the emulator answering it at once, the generator polling it every
``plan.batch_poll_s``). Each job's cost per record is its ledger's settled spend
(which the emulator's billing log equals: the integration tests hold it) over
its records; flex and batch are shown as ratios to online default (the issue's
target for batch: at most 0.52, the batch price being half the on-demand one).
The platform's CPU per record (the four services, as in ``overhead``) in batch
mode is shown over that of the online default job, measured in the same run.
"""

from __future__ import annotations

from typing import Any

from bench import stats
from bench.figures.overhead import cpu_seconds
from bench.jobs import ONE_STEP, prepare, submit, wait_final
from bench.plan import Plan
from bench.report import Figure, Target
from bench.rig import Rig

TIMEOUT = 600
PRO = "amazon.nova-pro-v1:0"
"""A model the pricing table prices at every rate (flex, priority and batch)."""
TEMPLATE: dict[str, Any] = {
    **ONE_STEP,
    "name": "bench-batch",
    "steps": [{**ONE_STEP["steps"][0], "model": PRO}],
}
WAYS: dict[str, dict[str, str]] = {
    "online default": {"mode": "online", "service_tier": "default"},
    "online flex": {"mode": "online", "service_tier": "flex"},
    "batch": {"mode": "batch", "service_tier": "default"},
}
"""How the same job runs, by name."""


def one_job(rig: Rig, plan: Plan, work: Any, way: dict[str, str]) -> dict[str, float]:
    """Run the job one way: its cost and the services' CPU seconds, per record."""
    records = plan.batch_records
    processes = rig.service_processes()
    before = cpu_seconds(processes)
    job, _ = submit(
        rig,
        work,
        records,
        partition_size=plan.batch_partition,
        mode=way["mode"],
        service_tier=way["service_tier"],
    )
    final = wait_final(rig, job, TIMEOUT)
    after = cpu_seconds(processes)
    if final["status"] != "COMPLETED" or final.get("records_done") != records:
        raise RuntimeError(f"{way} job {job} ended {final['status']}: {final.get('error')}")
    ledger = rig.db["ledgers"].find_one({"_id": job}) or {}
    if ledger.get("pending"):
        raise RuntimeError(f"{way} job {job} ended with leases open: {ledger.get('pending')}")
    cpu = sum(after[name] - before[name] for name in before)
    return {"cost": int(ledger["spent"]) / records, "cpu": cpu / records}


def run(rig: Rig, plan: Plan) -> list[Figure]:
    """Cost ratios to online default (flex, batch) and batch's CPU per record over online's."""
    rig.use_generators(
        1,
        plan.throughput_concurrency,
        {"PALETTE_GENERATOR_BATCH_POLL_SECONDS": str(plan.batch_poll_s)},
    )
    rig.latency(0)
    rig.emulator.configure(batch_delay_ms=0, batch_error_rate=0.0)
    work = prepare(rig, "bench-batch", TEMPLATE)
    warm_up, _ = submit(rig, work, 100)
    wait_final(rig, warm_up, TIMEOUT)
    samples: list[dict[str, dict[str, float]]] = []
    for _ in range(plan.runs):
        samples.append({name: one_job(rig, plan, work, way) for name, way in WAYS.items()})
    flex = [s["online flex"]["cost"] / s["online default"]["cost"] for s in samples]
    batch = [s["batch"]["cost"] / s["online default"]["cost"] for s in samples]
    cpu = [s["batch"]["cpu"] / s["online default"]["cpu"] for s in samples]
    details = {
        "records": plan.batch_records,
        "partition_size": plan.batch_partition,
        "runs": [
            {
                name: {"picodollars_per_record": round(v["cost"]), "cpu_ms": v["cpu"] * 1000}
                for name, v in sample.items()
            }
            for sample in samples
        ],
    }
    about = f"{plan.batch_records} one-step records, partitions of {plan.batch_partition}"
    return [
        Figure(
            "cost per record: online flex / online default",
            stats.median(flex),
            Target("report"),
            runs=[round(r, 4) for r in flex],
            note=f"{about}: ledger spend per record (== the emulator's billing)",
        ),
        Figure(
            "cost per record: batch / online default",
            stats.median(batch),
            Target("<=", 0.52),
            runs=[round(r, 4) for r in batch],
            details=details,
            note=f"{about}: ledger spend per record (== the emulator's billing)",
        ),
        Figure(
            "CPU per record: batch / online default",
            stats.median(cpu),
            Target("report"),
            runs=[round(r, 3) for r in cpu],
            note=f"{about}, model latency 0, batch polled every {plan.batch_poll_s} s: the four "
            "services' CPU per record in batch mode over online default's",
        ),
    ]
