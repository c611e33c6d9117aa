"""Purge of a deleted job's S3 objects and lease claims.

The generator owns ``jobs/`` (parts, export, snapshots) and the ``claims`` collection.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated

import structlog

from palette.common import keys
from palette.common import messages as m
from palette.common.broker import Context
from palette.generator.runtime import CONTEXT_KEY, Runtime
from palette.generator.storage import Storage

if TYPE_CHECKING:
    from mypy_boto3_s3.type_defs import ObjectIdentifierTypeDef

log = structlog.get_logger("palette.generator.purge")

DELETE_BATCH = 1000  # the most one DeleteObjects request takes


def delete_prefix(storage: Storage, prefix: str) -> int:
    """Delete every object under ``prefix`` (blocking); returns how many were deleted."""
    deleted = 0
    paginator = storage.s3.get_paginator("list_objects_v2")
    for page in paginator.paginate(Bucket=storage.bucket, Prefix=prefix):
        batch: list[ObjectIdentifierTypeDef] = [
            {"Key": obj["Key"]} for obj in page.get("Contents", [])
        ]
        for start in range(0, len(batch), DELETE_BATCH):
            chunk = batch[start : start + DELETE_BATCH]
            answer = storage.s3.delete_objects(
                Bucket=storage.bucket, Delete={"Objects": chunk, "Quiet": True}
            )
            errors = answer.get("Errors", [])
            if errors:
                raise RuntimeError(f"S3 refused to delete {len(errors)} objects: {errors[:3]}")
            deleted += len(chunk)
    return deleted


async def job_deleted(msg: m.JobDeleted, rt: Annotated[Runtime, Context(CONTEXT_KEY)]) -> None:
    """Delete every object and claim of the job; a redelivery finds nothing left."""
    prefix = keys.job_prefix(msg.job_id)
    deleted = await asyncio.to_thread(delete_prefix, rt.storage, prefix)
    claims = await rt.claims.purge_job(msg.job_id)
    log.info(
        "job_objects_deleted",
        job_id=msg.job_id,
        message_id=msg.message_id,
        objects=deleted,
        claims=claims,
    )
