"""``/seed-data``: seed file uploads, validated completely before they reach S3.

``SeedUploadController`` takes a whole file as the request body (the app
mounts it under ``max_body_bytes``); ``SeedDataController``'s JSON routes
have the app's ``max_json_body_bytes`` like every other JSON route.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import IO, Annotated, Any

import anyio.to_thread
import structlog
from litestar import Controller, Request, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from palette.common.keys import seed_prefix
from palette.common.messages import utcnow
from palette.common.seeds import SeedError, SeedFormat, format_from_name
from palette.gateway.openapi import problems
from palette.gateway.ports import GatewayRuntime
from palette.gateway.problems import Problem, field_error, invalid, not_found
from palette.gateway.schemas import (
    MissingExample,
    ParseProblem,
    SeedUpload,
    SeedValidation,
    UploadRequest,
    UploadTicket,
    ValidateSeeds,
)
from palette.gateway.seedfiles import (
    ValidationReport,
    detect_format,
    error_location,
    owns_seed_key,
    sanitize_filename,
    seed_key,
    validate_seed_file,
)
from palette.gateway.storage import CONTENT_TYPES

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


async def _check_seed_file(runtime: GatewayRuntime, owner: str, key: str) -> None:
    """404 unless ``key`` is one of the owner's seed files; 413 when it is too large to check."""
    missing = not_found("key", f"no seed file {key!r} under {seed_prefix(owner)}")
    if not owns_seed_key(owner, key):
        raise missing
    size = await runtime.seeds.size(key)
    if size is None:
        raise missing
    if size > runtime.settings.max_seed_upload_bytes:
        raise Problem(
            413,
            f"the seed file has {size} bytes; at most "
            f"{runtime.settings.max_seed_upload_bytes} are accepted",
            errors=[field_error("key", "file too large")],
        )


class SeedUploadController(Controller):
    """Upload seed files to the caller's prefix ``seed-data/<user>/``."""

    path = "/seed-data"
    tags = ["seed data"]

    @post(
        operation_id="uploadSeedData",
        status_code=HTTP_201_CREATED,
        responses=problems(413),
        summary="Upload a seed file (JSON array, JSONL or CSV)",
        description=(
            "Send the file as the raw request body with `?filename=`, or as "
            "multipart/form-data with a `file` field. The file is UTF-8 (a "
            "byte-order mark is allowed). The whole file is parsed before "
            "anything is stored; the first problem (an encoding other than "
            "UTF-8 included) answers 422 with its line and record."
        ),
    )
    async def upload(
        self,
        request: Request[Any, Any, Any],
        runtime: NamedDependency[GatewayRuntime],
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
        self, runtime: GatewayRuntime, owner: str, name: str, file: IO[bytes], size: int
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
            raise Problem(
                422,
                f"the seed file cannot be read: {exc}",
                errors=[field_error("file", exc.problem, **error_location(exc))],
                slug="invalid-seed-file",
            ) from None
        key = seed_key(owner, safe)
        await runtime.seeds.upload(key, file, fmt, records, size)
        log.info("seed_uploaded", owner=owner, key=key, records=records, bytes=size)
        return SeedUpload(key=key, records=records, format=fmt, bytes=size)


class SeedDataController(Controller):
    """Presigned uploads to the caller's prefix, and validation of the caller's seed files."""

    path = "/seed-data"
    tags = ["seed data"]

    @post(
        "/uploads",
        operation_id="createSeedUpload",
        summary="A presigned PUT for uploading a seed file straight to S3",
        status_code=HTTP_201_CREATED,
        responses=problems(413),
    )
    async def presign(
        self,
        data: JSONBody[UploadRequest],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
    ) -> UploadTicket:
        """A presigned PUT of a seed file, under the caller's prefix.

        Valid ``upload_url_seconds`` (15 minutes); it takes exactly ``bytes``
        bytes (at most ``max_seed_upload_bytes``). The size and content type
        are part of the signature; the file is checked when it is used
        (``/seed-data/validate``, ``POST /jobs``), never trusted on upload.
        """
        settings = runtime.settings
        if data.bytes > settings.max_seed_upload_bytes:
            raise Problem(
                413,
                f"a seed file may have at most {settings.max_seed_upload_bytes} bytes",
                errors=[field_error("bytes", f"at most {settings.max_seed_upload_bytes}")],
            )
        try:
            safe = sanitize_filename(data.filename)
        except ValueError as exc:
            raise invalid("filename", str(exc)) from None
        fmt = format_from_name(safe)
        if fmt is None:
            raise invalid("filename", "the name must end in .json, .jsonl, .ndjson or .csv")
        key = seed_key(owner, safe)
        headers = {"Content-Type": CONTENT_TYPES[fmt], "Content-Length": str(data.bytes)}
        seconds = settings.upload_url_seconds
        url = runtime.seeds.presign_put(key, data.bytes, headers["Content-Type"], seconds)
        return UploadTicket(
            key=key,
            url=url,
            headers=headers,
            expires_at=utcnow() + timedelta(seconds=seconds),
            max_bytes=settings.max_seed_upload_bytes,
        )

    @post(
        "/validate",
        operation_id="validateSeedData",
        summary="Check every record of a seed file against a template's requirements",
        status_code=HTTP_200_OK,
        responses=problems(404, 413),
    )
    async def validate(
        self,
        data: JSONBody[ValidateSeeds],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
    ) -> SeedValidation:
        """Check every record of one of the caller's seed files against a template.

        The file (JSON array, JSONL or CSV) is streamed, never loaded whole; the
        report gives records checked and records lacking fields with the first
        few examples. A file that stops being readable is a 422 problem naming
        the problem, its line and record, with the report up to there as its
        ``report`` member.
        """
        template = await runtime.repository.find_template(
            data.template_id, owner, data.template_version
        )
        if template is None:
            raise not_found("template_id", f"no template {data.template_id!r}")
        await _check_seed_file(runtime, owner, data.key)
        requirements = list(template.get("schema_requirements", []))
        report: ValidationReport = await runtime.seeds.validate(
            data.key, requirements, runtime.settings.validate_examples
        )
        error = report.parse_error
        view = SeedValidation(
            key=data.key,
            format=SeedFormat(report.format) if report.format else None,
            template_id=data.template_id,
            template_version=int(template["version"]),
            schema_requirements=requirements,
            valid=report.valid,
            records_checked=report.records_checked,
            records_missing_fields=report.records_missing_fields,
            examples=[MissingExample(record=r, missing=m) for r, m in report.examples],
            parse_error=(
                ParseProblem(problem=error.problem, line=error.line, record=error.record)
                if error
                else None
            ),
        )
        if error is not None:
            raise Problem(
                422,
                f"the seed file cannot be read: {error}",
                errors=[field_error("key", error.problem, **error_location(error))],
                slug="invalid-seed-file",
                extensions={"report": view.model_dump(mode="json")},
            )
        return view
