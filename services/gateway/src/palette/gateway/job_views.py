"""Job views, no I/O: the job document a create inserts, its SubmitJob, the API's JobView.

The writes that use them (create, cancel, remove) are in ``job_actions.py``.

The document follows ``docs/internals.md``; ``submit_message`` rebuilds the
command from the stored document, so the first publish and every outbox
republish send the same message with the same ``message_id``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from palette.common.job_document import (
    ExportStatus,
    export_status,
    job_document,
    job_settled,
    paused_partitions,
)
from palette.common.ledger_view import LedgerView
from palette.common.messages import JobStatus, OutputFormat, SubmitJob, utcnow
from palette.common.money import decimal_string, usd_string, usd_to_picos
from palette.common.targets import KEPT
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
    "short_of_target",
    "submit_message",
    "submit_message_id",
    "usd_string",
]


def now_ms() -> datetime:
    """The current UTC time at millisecond precision, as MongoDB stores it."""
    now = utcnow()
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


_SUBMITTED = {
    "seed_key",
    "num_records",
    "budget_usd",
    "output_format",
    "partition_size",
    "priority",
    "seed_sampling",
    "keep_if",
    "dedup",
    "target",
    "max_generated",
    "mode",
    "service_tier",
}
"""Fields of ``POST /jobs`` that its ``SubmitJob`` carries as they are."""


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

    Built by the one factory (``palette.common.job_document``) from the
    ``SubmitJob`` it will publish, the template version's steps and seed field
    requirements. Its ``partition_size`` is the one the request names, or null:
    the scheduler decides it then (``PALETTE_SCHEDULER_PARTITION_SIZE``) and
    writes it when the job starts.

    Raises:
        pydantic.ValidationError: the request and template make no valid ``SubmitJob``.
    """
    submit = SubmitJob(
        message_id=submit_message_id(job_id),
        occurred_at=now,
        job_id=job_id,
        owner=owner,
        template=template_spec(template),
        template_id=template["template_id"],
        template_version=template["version"],
        **request.model_dump(include=_SUBMITTED),
    )
    requirements = list(template.get("schema_requirements", []))
    return job_document(submit, schema_requirements=requirements, now=now, submit_published=False)


def template_spec(template: Document) -> TemplateSpec:
    """The steps, variables and ``keep_if`` of a stored template version."""
    return TemplateSpec.model_validate(
        {
            "steps": template["steps"],
            "variables": template.get("variables") or {},
            "keep_if": template.get("keep_if"),
        }
    )


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
        seed_sampling=job.get("seed_sampling") or "uniform",
        keep_if=job.get("keep_if"),
        dedup=job.get("dedup"),
        target=job.get("target") or "generated",
        max_generated=job.get("max_generated"),
        mode=job.get("mode") or "online",
        service_tier=job.get("service_tier") or "default",
    )


def kept_counts(job: Document) -> tuple[int | None, dict[str, int]]:
    """Records kept and rejected by reason, as the last export (or wave) counted them."""
    export = job.get("export")
    if isinstance(export, dict) and export.get("bytes") is not None:
        kept = int(export.get("records") or 0) - int(export.get("incomplete") or 0)
        return kept, dict(export.get("rejected_reasons") or {})
    counted = job.get("counted")
    if isinstance(counted, dict):
        return int(counted.get("kept") or 0), dict(counted.get("rejected_reasons") or {})
    return None, {}


def short_of_target(job: Document) -> str | None:
    """Why a ``target: "kept"`` job ended, its dataset written, short of ``num_records`` kept.

    None while it runs, for a ``generated`` job, and for one that kept its target. The
    reason is the scheduler's (``max_generated`` reached), else the job's stop reason.
    """
    export = job.get("export")
    if job.get("target") != KEPT or not JobStatus(job["status"]).is_final:
        return None
    if not isinstance(export, dict) or export.get("bytes") is None:
        return None
    kept, _ = kept_counts(job)
    if kept is None or kept >= int(job["num_records"]):
        return None
    found = job.get("short_of_target") or job.get("stop_reason") or job.get("error")
    return str(found or f"short of target: kept {kept} of {job['num_records']} records")


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
        rejected=int(export.get("rejected") or 0),
        rejected_reasons=dict(export.get("rejected_reasons") or {}),
    )


def records_incomplete(job: Document) -> int | None:
    """Incomplete records of the job's export, once it is written (None before)."""
    if export_status(job) is not ExportStatus.DONE:
        return None
    return int(job["export"].get("incomplete") or 0)


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
    paused, paused_reason = paused_partitions(job)
    short = short_of_target(job)
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
        mode=job.get("mode") or "online",
        service_tier=job.get("service_tier") or "default",
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
        partitions_paused=paused,
        paused_reason=paused_reason,
        seed_count=job.get("seed_count"),
        target=job.get("target") or "generated",
        max_generated=job.get("max_generated"),
        records_kept=kept_counts(job)[0],
        short_of_target=short is not None,
        short_of_target_reason=short,
        settled=job_settled(job),
        etag=job_etag(job),
    )
