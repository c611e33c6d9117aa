"""What the scheduler writes and sends, built from its documents and messages (no I/O).

Every message id is derived from what it is about (the lease, the job, the
status), so a message sent again after a redelivery or a restart is the same
message and its consumer applies it once.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from palette.common import messages as m
from palette.common.job_document import job_document
from palette.common.templates import TemplateError, analyse
from palette.scheduler.partitioning import lease_request

if TYPE_CHECKING:
    from palette.scheduler.lifecycle import JobPlan

Doc = dict[str, Any]


def submitted_job(msg: m.SubmitJob, now: datetime) -> Doc:
    """The document of a job a ``SubmitJob`` names and no document has yet.

    The same document the gateway inserts for the same command, except its
    outbox flag: the command was published. A template that does not parse
    needs no seed fields here; the job is refused when it is started.
    """
    try:
        requirements = analyse(msg.template)
    except TemplateError:
        requirements = []
    return job_document(msg, schema_requirements=requirements, now=now, submit_published=True)


def reserve_budget(job_id: str, part: Doc, record_estimate: int) -> m.ReserveBudget:
    """The lease request of a claimed partition (its ``lease_id`` is set)."""
    amount, minimum = lease_request(
        part["end"] - part["start"], record_estimate, int(part["needed"])
    )
    return m.ReserveBudget(
        message_id=f"reserve-{part['lease_id']}",
        job_id=job_id,
        partition=part["index"],
        lease_id=part["lease_id"],
        amount=amount,
        minimum=minimum,
    )


def generate_partition(msg: m.BudgetReserved, part: Doc, plan: JobPlan) -> m.GeneratePartition:
    """The command of a partition's attempt under the lease ``msg`` granted.

    ``part`` is the partition as it was before the attempt was counted.
    """
    return m.GeneratePartition(
        message_id=f"generate-{msg.lease_id}",
        job_id=msg.job_id,
        partition=msg.partition,
        attempt=part["attempt"] + 1,
        start=part["start"],
        end=part["end"],
        lease_id=msg.lease_id,
        lease_amount=msg.amount,
        template=plan.template,
        seed_key=plan.seed_key,
        seed_count=plan.seed_count,
        seed_sampling=plan.seed_sampling,
        service_tier=plan.service_tier,
        mode=plan.mode,
    )


def export_job(job: Doc) -> m.ExportJob:
    """The command that writes a job's dataset.

    A ``target: "kept"`` job's later waves (``planned_records`` beyond
    ``num_records``) each have an export of their own id.
    """
    planned = int(job.get("planned_records") or job["num_records"])
    wave = "" if planned == job["num_records"] else f"-{planned}"
    return m.ExportJob(
        message_id=f"export-{job['_id']}{wave}",
        job_id=job["_id"],
        output_format=m.OutputFormat(job["output_format"]),
        expected_records=planned,
    )


def written_export(msg: m.ExportCompleted) -> Doc:
    """The fields of a job's ``export`` once its dataset is written (besides ``status``)."""
    return {
        "key": msg.key,
        "records": msg.records,
        "incomplete": msg.incomplete,
        "bytes": msg.bytes,
        "format": msg.output_format.value,
        "rejected": msg.rejected,
        "rejected_reasons": dict(msg.rejected_reasons),
        "rejected_key": msg.rejected_key,
    }


def status_changed(
    before: Doc, status: m.JobStatus, reason: str | None, *, known_previous: bool = True
) -> m.JobStatusChanged:
    """The announcement of a job's move to ``status`` (``before``: its document before).

    ``known_previous`` false: ``before`` is the job as it is now (a move announced
    after a restart), so the status it came from is not known.
    """
    return m.JobStatusChanged(
        message_id=f"status-{before['_id']}-{status.value}",
        job_id=before["_id"],
        owner=before.get("owner", ""),
        status=status,
        previous=m.JobStatus(before["status"]) if known_previous else None,
        reason=reason,
    )
