"""API calls with a fallback for a gateway without their endpoint: cancel, usage, the job estimate.

Kept in this one module so each fallback can be dropped in one place:

- ``cancel``: ``POST /jobs/{id}/cancel`` (202, never deletes). Until the gateway
  has it, the only cancel is ``DELETE /jobs/{id}``, which *deletes* a finished
  job with its dataset; so the fallback sends it only for a job it has just
  read as QUEUED or RUNNING, and leaves a finished job alone. (A job that
  finishes between that read and the DELETE is still deleted: the race the new
  endpoint removes.)
- ``usage``: ``GET /usage?from&to&group_by``; until then the totals are added
  up from the caller's jobs (``GET /jobs``, and each job's dashboard for the
  cost by model), which leaves out template previews.
- ``estimate``: the preview's job-level estimate once it has one; until then
  the per-record worst case times the number of records.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from palette.cli.api import ACTIVE, Api, ApiError


def _route_missing(error: ApiError) -> bool:
    """A 404/405 for a route the gateway does not have (not for a missing job)."""
    return error.status in {404, 405} and not error.names_field("job_id")


@dataclass
class CancelOutcome:
    """What a cancel did: ``job`` as answered, and whether a cancel was sent."""

    job: dict[str, Any]
    sent: bool


def cancel(api: Api, job_id: str) -> CancelOutcome:
    """Cancel a queued or running job; never delete anything (see the module docstring)."""
    try:
        job = api.json("POST", f"/jobs/{job_id}/cancel")
        return CancelOutcome(dict(job), sent=True)
    except ApiError as exc:
        if not _route_missing(exc):
            raise
    job = api.job(job_id)
    if job["status"] not in ACTIVE:
        return CancelOutcome(job, sent=False)
    # DELETE cancels a QUEUED/RUNNING job (and deletes a finished one: hence the read).
    return CancelOutcome(api.delete_job(job_id), sent=True)


GROUPS = ("day", "model", "template")


def usage(api: Api, start: date, end: date, group_by: str) -> dict[str, Any]:
    """Spend from ``start`` to ``end`` (inclusive) per group: ``{"groups": [...], "total_usd"}``."""
    if group_by not in GROUPS:
        raise ValueError(f"group_by must be one of {GROUPS}")
    params = {"from": start.isoformat(), "to": end.isoformat(), "group_by": group_by}
    try:
        return dict(api.json("GET", "/usage", params=params))
    except ApiError as exc:
        if not _route_missing(exc):
            raise
    return _usage_from_jobs(api, start, end, group_by)


def _usage_from_jobs(api: Api, start: date, end: date, group_by: str) -> dict[str, Any]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    jobs: dict[str, int] = defaultdict(int)
    for job in api.jobs():
        created = datetime.fromisoformat(job["created_at"]).date()
        if created < start:
            break  # newest first: the rest are older
        if created > end:
            continue
        if group_by == "model":
            for line in api.dashboard(job["id"])["cost_by_model"]:
                totals[line["name"]] += Decimal(line["cost_usd"])
                jobs[line["name"]] += 1
            continue
        key = created.isoformat() if group_by == "day" else str(job["template_id"])
        totals[key] += Decimal(job["cost_usd"])
        jobs[key] += 1
    groups = [
        {"group": key, "cost_usd": str(totals[key]), "jobs": jobs[key]} for key in sorted(totals)
    ]
    total = sum(totals.values(), Decimal(0))
    return {
        "from": start.isoformat(),
        "to": end.isoformat(),
        "group_by": group_by,
        "groups": groups,
        "total_usd": str(total),
        "source": "jobs (GET /usage is not available on this gateway; previews not counted)",
    }


@dataclass
class Estimate:
    """What a job of ``records`` records may cost, from a template preview."""

    records: int
    worst_case_usd: Decimal
    expected_usd: Decimal | None = None


def estimate(preview: dict[str, Any], records: int) -> Estimate:
    """The job-level estimate: the preview's own when it gives one, else worst case x records."""
    job_level = preview.get("estimate")
    if isinstance(job_level, dict) and job_level.get("worst_case_usd") is not None:
        expected = job_level.get("mean_usd") or job_level.get("expected_usd")
        return Estimate(
            records,
            Decimal(str(job_level["worst_case_usd"])),
            Decimal(str(expected)) if expected is not None else None,
        )
    return Estimate(records, Decimal(preview["worst_case_usd"]) * records)
