"""Seed files in S3: upload after validation, existence, and a streamed check of leading records.

boto3 is synchronous, so every call runs in a worker thread.
"""

from __future__ import annotations

import io
from typing import IO, TYPE_CHECKING, Any

import anyio.to_thread
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from palette.common.seeds import SeedFormat, format_from_name, read_records
from palette.gateway.seedfiles import first_missing

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


class _RawBody(io.RawIOBase):
    """A botocore streaming body as a raw binary stream (so it can be buffered)."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


def _not_found(exc: ClientError) -> bool:
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in {"404", "NoSuchKey", "NotFound"}


class S3SeedStore:
    """Seed files of every user in one bucket."""

    def __init__(self, s3: S3Client, bucket: str) -> None:
        self._s3 = s3
        self._bucket = bucket

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

        def head() -> bool:
            try:
                self._s3.head_object(Bucket=self._bucket, Key=key)
            except ClientError as exc:
                if _not_found(exc):
                    return False
                raise
            return True

        return await anyio.to_thread.run_sync(head)

    async def check_records(
        self, key: str, requirements: list[str], limit: int
    ) -> tuple[int, list[str]] | None:
        """Stream the leading ``limit`` records and return the first lacking fields.

        Raises:
            SeedError: when the leading records cannot be parsed.
        """

        def check() -> tuple[int, list[str]] | None:
            body = self._s3.get_object(Bucket=self._bucket, Key=key)["Body"]
            with io.BufferedReader(_RawBody(body), buffer_size=64 * 1024) as stream:
                return first_missing(
                    read_records(stream, format_from_name(key)), requirements, limit
                )

        return await anyio.to_thread.run_sync(check)
