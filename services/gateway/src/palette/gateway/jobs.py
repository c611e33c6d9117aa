"""Pure job logic: the job document, its SubmitJob, and the view the API returns.

The document follows ``docs/internals.md``; ``submit_message`` rebuilds the
command from the stored document, so the first publish and every outbox
republish send the same message with the same ``message_id``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from palette.common.ledger_view import LedgerView
from palette.common.messages import JobStatus, OutputFormat, SubmitJob, utcnow
from palette.common.money import usd_string, usd_to_picos
from palette.common.templates import TemplateSpec
from palette.gateway.removal import job_etag
from palette.gateway.schemas import CreateJob, ExportView, JobView

Document = dict[str, Any]

__all__ = [
    "Document",
    "decimal_string",
    "in_flight",
    "job_view",
    "new_job_document",
    "now_ms",
    "percent",
    "records_incomplete",
    "submit_message",
    "submit_message_id",
    "usd_string",
]


def now_ms() -> datetime:
    """The current UTC time at millisecond precision, as MongoDB stores it."""
    now = utcnow()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def decimal_string(amount: Decimal) -> str:
    """A Decimal in plain positional form without trailing zeros."""
    normalized = amount.normalize()
    return format(normalized, "f")


def submit_message_id(job_id: str) -> str:
    """The stable message id of a job's SubmitJob (a republish is the same message)."""
    return f"submit-{job_id}"


def new_job_document(
    *,
    job_id: str,
    owner: str,
    request: CreateJob,
    template: Document,
    now: datetime,
) -> Document:
    """The job document the gateway inserts (status QUEUED, outbox flag unset).

    Its ``partition_size`` is the one the request names, or null: the scheduler
    decides it then (``PALETTE_SCHEDULER_PARTITION_SIZE``) and writes it when
    the job starts.
    """
    return {
        "_id": job_id,
        "owner": owner,
        "template": {"steps": list(template["steps"])},
        "template_id": template["template_id"],
        "template_version": template["version"],
        "schema_requirements": list(template.get("schema_requirements", [])),
        "seed_key": request.seed_key,
        "num_records": request.num_records,
        "budget_usd": decimal_string(request.budget_usd),
        "budget_picos": usd_to_picos(request.budget_usd),
        "output_format": request.output_format.value,
        "partition_size": request.partition_size,
        "priority": request.priority,
        "status": JobStatus.QUEUED.value,
        "created_at": now,
        "updated_at": now,
        "started_at": None,
        "finished_at": None,
        "error": None,
        "records_done": 0,
        "seed_count": None,
        "partitions_total": None,
        "in_flight": 0,
        "export": None,
        "submit_published": False,
    }


def submit_message(job: Document) -> SubmitJob:
    """The SubmitJob of a stored job document (same id on every call)."""
    job_id = str(job["_id"])
    return SubmitJob(
        message_id=submit_message_id(job_id),
        occurred_at=job["created_at"],
        job_id=job_id,
        owner=job["owner"],
        template=TemplateSpec.model_validate(job["template"]),
        template_id=job.get("template_id"),
        template_version=job.get("template_version"),
        seed_key=job["seed_key"],
        num_records=job["num_records"],
        budget_usd=Decimal(str(job["budget_usd"])),
        output_format=OutputFormat(job["output_format"]),
        partition_size=job.get("partition_size"),
        priority=job.get("priority", 0),
    )


def _export(job: Document) -> ExportView | None:
    export = job.get("export")
    if not isinstance(export, dict) or not export.get("key") or export.get("bytes") is None:
        return None
    return ExportView(
        key=export["key"],
        records=int(export.get("records") or 0),
        incomplete=int(export.get("incomplete") or 0),
        bytes=int(export["bytes"]),
        format=OutputFormat(export.get("format") or job["output_format"]),
    )


def records_incomplete(job: Document) -> int | None:
    """Incomplete records of the job's export, once it is written (None before)."""
    export = job.get("export")
    if not isinstance(export, dict) or export.get("status") != "DONE":
        return None
    return int(export.get("incomplete") or 0)


def in_flight(job: Document) -> int:
    """Partitions of a job being generated now.

    ``slots`` (a lease id or null per slot) when the job has it, else ``in_flight``.
    """
    slots = job.get("slots")
    if isinstance(slots, list):
        return sum(1 for slot in slots if slot is not None)
    return int(job.get("in_flight") or 0)


def percent(part: int, whole: int) -> float:
    """``part`` of ``whole`` in percent, rounded to 0.01 and within [0, 100]."""
    if whole <= 0:
        return 0.0
    return round(min(max(part / whole * 100.0, 0.0), 100.0), 2)


def job_view(job: Document, ledger: LedgerView | None) -> JobView:
    """The API view of a job and its ledger (no ledger yet means nothing spent)."""
    budget = int(job.get("budget_picos") or usd_to_picos(Decimal(str(job["budget_usd"]))))
    money = ledger or LedgerView.empty(budget)
    done = int(job.get("records_done") or 0)
    return JobView(
        id=str(job["_id"]),
        status=JobStatus(job["status"]),
        template_id=job.get("template_id"),
        template_version=job.get("template_version"),
        seed_key=job["seed_key"],
        num_records=job["num_records"],
        records_done=done,
        records_incomplete=records_incomplete(job),
        progress_percent=percent(done, int(job["num_records"])),
        partition_size=job.get("partition_size"),
        priority=int(job.get("priority") or 0),
        cost_usd=usd_string(money.spent),
        budget_usd=decimal_string(Decimal(str(job["budget_usd"]))),
        reserved_usd=usd_string(money.reserved),
        remaining_usd=usd_string(max(money.budget - money.spent - money.reserved, 0)),
        output_format=OutputFormat(job["output_format"]),
        created_at=job["created_at"],
        started_at=job.get("started_at"),
        finished_at=job.get("finished_at"),
        error=job.get("error"),
        export=_export(job),
        partitions_total=job.get("partitions_total"),
        partitions_in_flight=in_flight(job),
        seed_count=job.get("seed_count"),
        etag=job_etag(job),
    )
