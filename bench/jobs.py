"""Jobs as the benchmark runs them: templates, submitting, waiting, and the calls they made."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.rig import Rig, wall_time

ROOT = Path(__file__).resolve().parents[1]
SEEDS = ROOT / "examples" / "seeds.jsonl"
MICRO = "amazon.nova-micro-v1:0"
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
FINAL = ("COMPLETED", "FAILED", "CANCELLED", "BUDGET_EXCEEDED")
POLL_SECONDS = 0.02

ONE_STEP: dict[str, Any] = {
    "name": "bench-one-step",
    "steps": [
        {
            "id": "note",
            "model": MICRO,
            "system": "You write short, specific product notes.",
            "prompt": "Write a short note about {{ product }} for a {{ persona.role }} "
            "who feels {{ persona.mood }}.",
            "max_tokens": 64,
            "temperature": 0.7,
        }
    ],
}
"""The throughput job's template: one call per record."""

TWO_STEPS: dict[str, Any] = {
    "name": "bench-two-steps",
    "steps": [
        {
            "id": "question",
            "model": MICRO,
            "prompt": "Ask a question about {{ product }} as a {{ persona.role }}.",
            "max_tokens": 60,
        },
        {
            "id": "answer",
            "model": HAIKU,
            "system": "Support agent for {{ product }}.",
            "prompt": "Answer briefly: {{ steps.question.output }}",
            "max_tokens": 120,
        },
    ],
}
"""The overshoot jobs' template: two calls per record, the second one priced higher."""


@dataclass(frozen=True, slots=True)
class Workload:
    """A user with a template and a seed file, ready to submit jobs."""

    user: str
    template_id: str
    seed_key: str


@dataclass(frozen=True, slots=True)
class Call:
    """One billed model call: when it arrived, when it was billed, its metadata."""

    started: float
    ended: float
    model: str
    input_tokens: int
    output_tokens: int
    metadata: dict[str, str]


def prepare(rig: Rig, user: str, template: dict[str, Any]) -> Workload:
    """Create the template and upload the example seeds as ``user``."""
    api = rig.api(user)
    created = api.create_template(template)
    seeds = api.upload_seeds(SEEDS)
    return Workload(user, created["id"], seeds["key"])


def submit(
    rig: Rig,
    work: Workload,
    records: int,
    *,
    budget_usd: str = "1000",
    output_format: str = "jsonl",
    partition_size: int | None = None,
    mode: str | None = None,
    service_tier: str | None = None,
) -> tuple[str, float]:
    """``POST /jobs``; the job id and the wall-clock time just before the request."""
    body: dict[str, Any] = {
        "template_id": work.template_id,
        "seed_key": work.seed_key,
        "num_records": records,
        "budget_usd": budget_usd,
        "output_format": output_format,
    }
    optional = {"partition_size": partition_size, "mode": mode, "service_tier": service_tier}
    body |= {name: value for name, value in optional.items() if value is not None}
    at = time.time()
    job = rig.api(work.user).submit_job(**body)
    return str(job["id"]), at


def job_doc(rig: Rig, job_id: str) -> dict[str, Any]:
    """The job's document as the scheduler keeps it."""
    doc = rig.db["jobs"].find_one({"_id": job_id})
    if doc is None:
        raise LookupError(f"no job {job_id}")
    return dict(doc)


def wait_records(rig: Rig, job_id: str, records: int, timeout: float) -> float:
    """Wall-clock time at which the job first counted ``records`` records done.

    Raises:
        TimeoutError: not reached in time, or the job ended before.
    """
    deadline = time.monotonic() + timeout
    jobs = rig.db["jobs"]
    while True:
        doc = jobs.find_one({"_id": job_id}, {"records_done": 1, "status": 1})
        now = time.time()
        if doc is not None and doc.get("records_done", 0) >= records:
            return now
        if doc is not None and doc.get("status") in FINAL:
            raise TimeoutError(f"job {job_id} ended {doc['status']} before {records} records")
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} did not reach {records} records in {timeout:.0f} s")
        time.sleep(POLL_SECONDS)


def wait_final(rig: Rig, job_id: str, timeout: float) -> dict[str, Any]:
    """The job's document once it is final and its export is written (or failed).

    Raises:
        TimeoutError: the job is not done in time.
    """
    deadline = time.monotonic() + timeout
    while True:
        doc = job_doc(rig, job_id)
        export = doc.get("export") or {}
        if doc["status"] in FINAL and export.get("status") in ("DONE", "FAILED"):
            return doc
        if doc["status"] == "FAILED" and not doc.get("partitions_total"):
            return doc
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} not done in {timeout:.0f} s: {doc['status']}")
        time.sleep(POLL_SECONDS * 5)


def calls_of(rig: Rig, job_id: str) -> list[Call]:
    """Every billed model call of the job, in billing order."""
    return [
        Call(
            started=wall_time(entry.get("started_at") or entry["at"]),
            ended=wall_time(entry["at"]),
            model=entry["model_id"],
            input_tokens=int(entry["input_tokens"]),
            output_tokens=int(entry["output_tokens"]),
            metadata=entry["request_metadata"],
        )
        for entry in rig.emulator.billing(job_id=job_id)
    ]


def wait_calling(rig: Rig, job_id: str, timeout: float) -> None:
    """Return once the job's first model call has been billed.

    Raises:
        TimeoutError: no call in time.
    """
    deadline = time.monotonic() + timeout
    while rig.emulator.billing_summary(job_id=job_id)["calls"] == 0:
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} made no model call in {timeout:.0f} s")
        time.sleep(POLL_SECONDS * 2)
