"""The ``jobs`` document: its one factory, its export's states and when the export is settled.

The gateway inserts a job when ``POST /jobs`` accepts it; the scheduler inserts
it when a ``SubmitJob`` names a job no document has yet (another system
published it directly). Both build it here, from the ``SubmitJob``, so the
stored document is the same whichever service creates it; only the outbox flag
``submit_published`` says which one did (see ``docs/internals.md``).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from palette.common.messages import JobStatus, SubmitJob
from palette.common.money import decimal_string, usd_to_picos
from palette.common.targets import max_generated

Doc = dict[str, Any]


class ExportStatus(StrEnum):
    """The ``status`` of a job's ``export`` (``export`` is null until one is asked for)."""

    PENDING = "PENDING"
    """A generator is asked to write the dataset."""
    DONE = "DONE"
    """The dataset is written: ``key``, ``records``, ``incomplete``, ``bytes``, ``format``."""
    FAILED = "FAILED"
    """The dataset could not be written: ``error``."""


def job_document(
    submit: SubmitJob,
    *,
    schema_requirements: list[str],
    now: datetime,
    submit_published: bool,
) -> Doc:
    """The document of a new job, ``QUEUED`` with nothing done.

    ``schema_requirements`` are the seed fields the template needs;
    ``submit_published`` is the gateway's outbox flag: false until its
    ``SubmitJob`` is published (a document the scheduler creates came from a
    published one). ``partition_size`` stays null unless the job names one;
    the scheduler writes its own when it starts the job, with ``slots``,
    ``seed_count`` and ``partitions_total``; ``in_flight`` (0) is what readers
    count as partitions in flight while the job has no ``slots`` yet.
    """
    return {
        "_id": submit.job_id,
        "owner": submit.owner,
        "template": submit.template.model_dump(mode="json"),
        "template_id": submit.template_id,
        "template_version": submit.template_version,
        "schema_requirements": list(schema_requirements),
        "seed_key": submit.seed_key,
        "num_records": submit.num_records,
        "budget_usd": decimal_string(submit.budget_usd),
        "budget_picos": usd_to_picos(submit.budget_usd),
        "output_format": submit.output_format.value,
        "partition_size": submit.partition_size,
        "priority": submit.priority,
        "seed_sampling": _dump(submit.seed_sampling),
        "keep_if": submit.keep_if,
        "dedup": _dump(submit.dedup),
        "target": submit.target,
        "max_generated": max_generated(submit.target, submit.num_records, submit.max_generated),
        "mode": submit.mode.value,
        "service_tier": submit.service_tier.value,
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
        "submit_published": submit_published,
    }


def _dump(value: Any) -> Any:
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


def export_status(job: Doc) -> ExportStatus | None:
    """The status of the job's export; None while none is asked for."""
    export = job.get("export")
    if not isinstance(export, dict) or export.get("status") is None:
        return None
    return ExportStatus(export["status"])


def export_settled(job: Doc) -> bool:
    """Whether nothing more will be written for the job's export.

    Settled: written, failed, or never to come (the job never started, so it
    has no partitions). Not settled: asked for and not written yet, or still to
    be asked for once the started job's leases close.
    """
    if isinstance(job.get("export"), dict):
        return export_status(job) is not ExportStatus.PENDING
    return not job.get("partitions_total")


def job_settled(job: Doc) -> bool:
    """Whether the job has ended and its export is settled: nothing about it will change."""
    return JobStatus(job["status"]).is_final and export_settled(job)


def paused_partitions(job: Doc) -> tuple[int, str | None]:
    """A running job's paused partitions (its ``paused`` map): how many, and the latest reason.

    The scheduler keeps ``paused.<index> = {"reason", "until"}`` while a
    partition waits out a model that throttled every call for too long.
    """
    if job.get("status") != JobStatus.RUNNING.value:
        return 0, None
    entries = [entry for entry in (job.get("paused") or {}).values() if isinstance(entry, dict)]
    if not entries:
        return 0, None
    latest = max(entries, key=lambda entry: str(entry.get("until", "")))
    return len(entries), str(latest.get("reason") or "") or None
