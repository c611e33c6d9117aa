"""Generator handlers: one thin function per message, and ``HANDLERS``, what consumes what.

Each binds the message's log context and calls the domain with the process's
``GeneratorRuntime``: ``partition.py``, ``dataset_export.py``, ``snapshot.py``, ``preview.py``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import structlog
from faststream.rabbit.message import RabbitMessage

from palette.common import keys
from palette.common import messages as m
from palette.common.broker import Context
from palette.common.service import Handlers, Injected
from palette.common.topology import Broadcasts, Queues
from palette.generator.dataset_export import run_export
from palette.generator.metrics import PARTITIONS_IN_FLIGHT
from palette.generator.partition import run_partition
from palette.generator.preview import answer_preview
from palette.generator.runtime import GeneratorRuntime
from palette.generator.snapshot import write_snapshot

log = structlog.get_logger("palette.generator.handlers")


async def generate_partition(msg: m.GeneratePartition, rt: Injected[GeneratorRuntime]) -> None:
    """Generate a partition's missing records; acked after its end event is published.

    When the broker closes the delivery's channel (a consumer acknowledgement
    timeout on a long partition, a lost connection) the partition goes on
    (``palette.common.broker.RunToCompletion``) under its claim and publishes
    its end event; the redelivered message then finds the claim renewed, or
    done, and is dropped. Nothing already paid for is thrown away.
    """
    with structlog.contextvars.bound_contextvars(
        job_id=msg.job_id,
        partition_id=msg.partition,
        message_id=msg.message_id,
        attempt=msg.attempt,
    ):
        async with rt.claims.claim(msg.lease_id, msg.job_id) as claim:
            if claim is None:
                log.info("duplicate_delivery_dropped", lease_id=msg.lease_id)
                return
            with PARTITIONS_IN_FLIGHT.track_inprogress():
                await run_partition(msg, rt, rt.publish, claim)


async def export_job(msg: m.ExportJob, rt: Injected[GeneratorRuntime]) -> None:
    """Write the job's dataset; acked after ExportCompleted/ExportFailed is published."""
    with structlog.contextvars.bound_contextvars(
        job_id=msg.job_id, message_id=msg.message_id, output_format=msg.output_format.value
    ):
        await run_export(msg, rt, rt.publish)


async def export_snapshot(msg: m.ExportSnapshot, rt: Injected[GeneratorRuntime]) -> None:
    """Write the snapshot unless it exists; a job that does not exist is skipped."""
    await write_snapshot(msg, rt)


async def job_stopped(msg: m.JobStopped, rt: Injected[GeneratorRuntime]) -> None:
    """Remember that a job stopped: no new model call for it from now on."""
    if rt.stops.stop(msg.job_id, msg.status):
        log.info(
            "job_stopped", job_id=msg.job_id, status=msg.status.value, message_id=msg.message_id
        )


async def job_deleted(msg: m.JobDeleted, rt: Injected[GeneratorRuntime]) -> None:
    """Delete every object, claim and batch submission of the job; a redelivery finds none."""
    deleted = await asyncio.to_thread(rt.storage.delete_prefix, keys.job_prefix(msg.job_id))
    claims = await rt.claims.purge_job(msg.job_id)
    batches = await rt.batches.purge_job(msg.job_id) if rt.batches is not None else 0
    log.info(
        "job_objects_deleted",
        job_id=msg.job_id,
        message_id=msg.message_id,
        objects=deleted,
        claims=claims,
        batch_invocations=batches,
    )


async def preview_record(
    msg: m.PreviewRecord,
    rt: Injected[GeneratorRuntime],
    message: Annotated[RabbitMessage, Context("message")],
) -> m.PreviewResult:
    """Answer one preview request (the reply goes to the request's reply-to)."""
    return await answer_preview(msg, rt, redelivered=bool(message.raw_message.redelivered))


HANDLERS: Handlers = {
    Queues.GENERATE_PARTITION: generate_partition,
    Queues.EXPORT_JOB: export_job,
    Broadcasts.JOB_STOPPED: job_stopped,
    Queues.EXPORT_SNAPSHOT: export_snapshot,
    Queues.GEN_JOB_DELETED: job_deleted,
    Queues.PREVIEW_RECORD: preview_record,
}
