"""Snapshots: what a job has made so far, written as a dataset file on request.

The gateway asks for one (``ExportSnapshot``) to serve a partial export of a
running job, or a finished job's data in another format, and waits for the
object to appear. A snapshot is written like the export (streaming, each
record once) under ``keys.snapshot_key``; an existing snapshot is kept, so a
redelivered request has no second effect.
"""

from __future__ import annotations

import asyncio

import structlog

from palette.common import keys
from palette.common import messages as m
from palette.common.clients import object_exists
from palette.generator.dataset_export import write_job_dataset
from palette.generator.runtime import GeneratorRuntime
from palette.generator.storage import Storage

log = structlog.get_logger("palette.generator.snapshot")


def snapshot_exists(storage: Storage, key: str) -> bool:
    """Whether the snapshot object is already written (blocking)."""
    return object_exists(storage.s3, storage.bucket, key)


async def write_snapshot(msg: m.ExportSnapshot, rt: GeneratorRuntime) -> None:
    """Write the snapshot unless it exists; a job that does not exist is skipped."""
    key = keys.snapshot_key(msg.job_id, msg.tag, msg.output_format)
    with structlog.contextvars.bound_contextvars(
        job_id=msg.job_id, message_id=msg.message_id, key=key
    ):
        if await asyncio.to_thread(snapshot_exists, rt.storage, key):
            log.info("snapshot_exists")
            return
        info = await rt.jobs.export_info(msg.job_id)
        if info is None:
            log.warning("snapshot_skipped", reason="no such job")
            return
        result = await write_job_dataset(rt, msg.job_id, msg.output_format, info, key)
        log.info("snapshot_written", records=result.records, bytes=result.bytes)
