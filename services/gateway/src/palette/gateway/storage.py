"""Objects in S3: seed uploads and checks, presigned URLs, sizes of exports and snapshots.

boto3 is synchronous, so every call that does I/O runs in a worker thread
(presigning is local computation and runs inline).
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING

import anyio.to_thread
import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from palette.common.clients import is_missing, object_exists
from palette.common.seeds import (
    SeedError,
    SeedFormat,
    buffered,
    format_from_name,
    read_records,
    sniff_format,
)
from palette.gateway.seedfiles import ValidationReport, first_missing, validate_records
from palette.gateway.settings import GatewaySettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CONTENT_TYPES = {
    SeedFormat.JSON: "application/json",
    SeedFormat.JSONL: "application/x-ndjson",
    SeedFormat.CSV: "text/csv",
}


# A bounded multipart upload: about two 8 MB chunks are held in memory at a time.
TRANSFER = TransferConfig(
    multipart_threshold=8 * 1024 * 1024,
    multipart_chunksize=8 * 1024 * 1024,
    max_concurrency=2,
)
TRANSFER.max_in_memory_upload_chunks = 2  # s3transfer's knob; boto3's constructor lacks it


def presigning_client(settings: GatewaySettings) -> S3Client:
    """An S3 client that signs URLs with SigV4 (so a PUT's size and type are signed).

    It signs for ``presign_endpoint_url`` when set (the address clients reach S3
    at, e.g. ``http://localhost:9000`` beside ``http://minio:9000``); signing is
    local, the client never connects.
    """
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.presign_endpoint_url or settings.s3_endpoint_url,
        region_name=settings.aws_region,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


class S3SeedStore:
    """Seed files of every user in one bucket."""

    def __init__(self, s3: S3Client, bucket: str, presigner: S3Client | None = None) -> None:
        self._s3 = s3
        self._bucket = bucket
        self._presigner = presigner or s3

    async def upload(
        self, key: str, file: IO[bytes], fmt: SeedFormat, records: int, size: int
    ) -> None:
        """Store a validated seed file (multipart for large files)."""
        file.seek(0)
        extra = {
            "ContentType": CONTENT_TYPES[fmt],
            "Metadata": {"records": str(records), "format": fmt.value, "bytes": str(size)},
        }
        await anyio.to_thread.run_sync(
            lambda: self._s3.upload_fileobj(
                file, self._bucket, key, ExtraArgs=extra, Config=TRANSFER
            )
        )

    async def exists(self, key: str) -> bool:
        """Whether the key holds an object."""
        return await anyio.to_thread.run_sync(object_exists, self._s3, self._bucket, key)

    async def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is none."""

        def head() -> int | None:
            try:
                return int(self._s3.head_object(Bucket=self._bucket, Key=key)["ContentLength"])
            except ClientError as exc:
                if is_missing(exc):
                    return None
                raise

        return await anyio.to_thread.run_sync(head)

    async def read_lines(self, prefix: str, limit: int) -> list[bytes]:
        """The first ``limit`` non-empty lines of the objects under ``prefix``, in key order.

        Objects are read one after another until ``limit`` lines are in hand
        (part objects of a job: their keys sort by first record).
        """

        def read() -> list[bytes]:
            lines: list[bytes] = []
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self._bucket, Prefix=prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    try:
                        body = self._s3.get_object(Bucket=self._bucket, Key=item["Key"])["Body"]
                    except ClientError as exc:
                        if is_missing(exc):  # deleted since it was listed
                            continue
                        raise
                    with body:
                        for line in body.iter_lines():
                            if line.strip():
                                lines.append(line)
                                if len(lines) >= limit:
                                    return lines
            return lines

        return await anyio.to_thread.run_sync(read)

    def presign_put(self, key: str, size: int, content_type: str, seconds: int) -> str:
        """A presigned PUT whose signature covers the key, the size and the content type."""
        return self._presigner.generate_presigned_url(
            "put_object",
            Params={
                "Bucket": self._bucket,
                "Key": key,
                "ContentLength": size,
                "ContentType": content_type,
            },
            ExpiresIn=seconds,
            HttpMethod="PUT",
        )

    def presign_get(self, key: str, filename: str, seconds: int) -> str:
        """A presigned GET that the browser saves as ``filename``."""
        return self._presigner.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self._bucket,
                "Key": key,
                "ResponseContentDisposition": f'attachment; filename="{filename}"',
            },
            ExpiresIn=seconds,
        )

    async def validate(self, key: str, requirements: list[str], examples: int) -> ValidationReport:
        """Stream every record of a seed file and check it (never the whole file in memory)."""

        def run() -> ValidationReport:
            body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"]
            with buffered(body) as stream:
                try:
                    fmt = format_from_name(key) or sniff_format(stream.peek(512)[:512])
                except SeedError as exc:
                    return ValidationReport(parse_error=exc)
                report = validate_records(read_records(stream, fmt), requirements, examples)
                report.format = fmt
                return report

        return await anyio.to_thread.run_sync(run)

    async def check_records(
        self, key: str, requirements: list[str], limit: int
    ) -> tuple[int, list[str]] | None:
        """Stream the leading ``limit`` records and return the first lacking fields.

        Raises:
            SeedError: when the leading records cannot be parsed.
        """

        def check() -> tuple[int, list[str]] | None:
            body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"]
            with buffered(body) as stream:
                return first_missing(
                    read_records(stream, format_from_name(key)), requirements, limit
                )

        return await anyio.to_thread.run_sync(check)
