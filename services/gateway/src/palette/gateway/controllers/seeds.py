"""``/seed-data``: seed file uploads, validated completely before they reach S3."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from typing import IO, Annotated, Any

import anyio.to_thread
import structlog
from litestar import Controller, Request, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from palette.common.seeds import SeedError
from palette.gateway.openapi import problems
from palette.gateway.ports import Runtime
from palette.gateway.problems import Problem, field_error, invalid
from palette.gateway.schemas import SeedUpload
from palette.gateway.seedfiles import (
    detect_format,
    sanitize_filename,
    seed_key,
    validate_seed_file,
)

log = structlog.get_logger("palette.gateway")

SPOOL_BYTES = 1024 * 1024


async def _spool(chunks: AsyncIterator[bytes]) -> tuple[IO[bytes], int]:
    """Copy the request body into a temp file that stays in memory only while small."""
    spool: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
    size = 0
    try:
        async for chunk in chunks:
            if chunk:
                spool.write(chunk)
                size += len(chunk)
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool, size


async def _multipart_file(request: Request[Any, Any, Any]) -> UploadFile:
    form = await request.form()
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        for value in form.values():
            if isinstance(value, UploadFile):
                await value.close()
        raise invalid("file", "a multipart upload needs the seed file in a field named 'file'")
    return upload


def _size(file: IO[bytes]) -> int:
    file.seek(0, 2)
    size = file.tell()
    file.seek(0)
    return size


class SeedDataController(Controller):
    """Upload seed files to the caller's prefix ``seed-data/<user>/``."""

    path = "/seed-data"
    tags = ["seed data"]

    @post(
        operation_id="uploadSeedData",
        responses=problems(413, 422),
        summary="Upload a seed file (JSON array, JSONL or CSV)",
        description=(
            "Send the file as the raw request body with `?filename=`, or as "
            "multipart/form-data with a `file` field. The whole file is parsed "
            "before anything is stored; the first problem answers 422 with its "
            "line and record."
        ),
    )
    async def upload(
        self,
        request: Request[Any, Any, Any],
        runtime: NamedDependency[Runtime],
        owner: NamedDependency[str],
        filename: Annotated[
            str | None,
            QueryParameter(
                max_length=1000,
                description="File name; its extension (.json, .jsonl, .csv) sets the format.",
            ),
        ] = None,
    ) -> SeedUpload:
        """Stream the body to a spooled temp file, validate every record, then upload to S3."""
        content_type, _ = request.content_type
        file: IO[bytes]
        if content_type == "multipart/form-data":
            upload = await _multipart_file(request)
            name = filename or upload.filename
            file = upload.file
            size = _size(file)
        else:
            if not filename:
                raise invalid("filename", "the query parameter filename is required")
            name = filename
            file, size = await _spool(request.stream())
        try:
            return await self._store(runtime, owner, name, file, size)
        finally:
            file.close()

    async def _store(
        self, runtime: Runtime, owner: str, name: str, file: IO[bytes], size: int
    ) -> SeedUpload:
        try:
            safe = sanitize_filename(name)
        except ValueError as exc:
            raise invalid("filename", str(exc)) from None
        if size == 0:
            raise invalid("file", "the file is empty")
        try:
            fmt = await anyio.to_thread.run_sync(detect_format, file, safe)
            records = await anyio.to_thread.run_sync(validate_seed_file, file, fmt)
        except SeedError as exc:
            where = {k: v for k, v in (("line", exc.line), ("record", exc.record)) if v is not None}
            raise Problem(
                422,
                f"the seed file cannot be read: {exc}",
                errors=[field_error("file", exc.problem, **where)],
                slug="invalid-seed-file",
            ) from None
        key = seed_key(owner, safe)
        await runtime.seeds.upload(key, file, fmt, records, size)
        log.info("seed_uploaded", owner=owner, key=key, records=records, bytes=size)
        return SeedUpload(key=key, records=records, format=fmt, bytes=size)
