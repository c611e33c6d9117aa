"""S3 access of the generator: parts, seeds and exports (blocking; run in threads)."""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

import structlog
from botocore.exceptions import ClientError

from palette.common import keys, seeds
from palette.common.clients import is_missing
from palette.common.seeds import buffered
from palette.generator.records import FinishedRecord, PartMeta, decode_line, encode_part

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, ObjectIdentifierTypeDef

log = structlog.get_logger("palette.generator.storage")

READ_BUFFER_BYTES = 64 * 1024
DELETE_BATCH = 1000  # the most one DeleteObjects request takes


@dataclass(frozen=True, slots=True)
class StoredPart:
    """A part object in S3; ``meta`` is None when its metadata is unreadable."""

    key: str
    first: int
    meta: PartMeta | None


class Storage:
    """Blocking S3 operations on one bucket."""

    def __init__(self, s3: S3Client, bucket: str) -> None:
        self.s3 = s3
        self.bucket = bucket

    def part_keys(self, job_id: str, start: int = 0, end: int | None = None) -> Iterator[str]:
        """Keys of a job's parts whose first index is in ``[start, end)``, in key order."""
        return self._indexed_keys(
            keys.parts_prefix(job_id), partial(keys.part_key, job_id), keys.part_start, start, end
        )

    def incomplete_keys(self, job_id: str, start: int = 0, end: int | None = None) -> Iterator[str]:
        """Keys of a job's incomplete records with an index in ``[start, end)``, by index."""
        return self._indexed_keys(
            keys.incomplete_prefix(job_id),
            partial(keys.incomplete_key, job_id),
            keys.incomplete_index,
            start,
            end,
        )

    def _indexed_keys(
        self,
        prefix: str,
        key_of: Callable[[int], str],
        index_of: Callable[[str], int],
        start: int,
        end: int | None,
    ) -> Iterator[str]:
        """Keys under ``prefix`` whose index (``index_of``) is in ``[start, end)``, in key order."""
        kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
        if start > 0:
            kwargs["StartAfter"] = key_of(start - 1)
        for page in self.s3.get_paginator("list_objects_v2").paginate(**kwargs):
            for obj in page.get("Contents", []):
                key = obj["Key"]
                try:
                    index = index_of(key)
                except ValueError:
                    continue
                if end is not None and index >= end:
                    return
                yield key

    def head_part(self, key: str) -> PartMeta | None:
        """A part's metadata, or None when it cannot be parsed."""
        head = self.s3.head_object(Bucket=self.bucket, Key=key)
        try:
            return PartMeta.from_metadata(head.get("Metadata", {}))
        except ValueError as exc:
            log.warning("part_metadata_unreadable", key=key, error=str(exc))
            return None

    def list_parts(self, job_id: str, start: int, end: int) -> list[StoredPart]:
        """Every part with its first index in ``[start, end)`` and its metadata."""
        return [
            StoredPart(key, keys.part_start(key), self.head_part(key))
            for key in self.part_keys(job_id, start, end)
        ]

    def put_part(self, key: str, body: bytes, meta: PartMeta) -> bool:
        """Write a part once; False if another writer's part holds the key.

        The write is conditional (``If-None-Match: *``), so a part is never
        rewritten; when the condition fails because an SDK retry of this very
        write had landed, the stored message id shows it and this is success.
        """
        try:
            self.s3.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType="application/x-ndjson",
                Metadata=meta.to_metadata(),
                IfNoneMatch="*",
            )
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code")
            if status != 412 and code not in {"PreconditionFailed", "ConditionalRequestConflict"}:
                raise
            stored = self.head_part(key)
            return stored is not None and stored.message == meta.message
        return True

    def put_incomplete(self, job_id: str, record: FinishedRecord) -> None:
        """Write an incomplete record's object, replacing what an earlier attempt wrote."""
        self.s3.put_object(
            Bucket=self.bucket,
            Key=keys.incomplete_key(job_id, record.index),
            Body=encode_part(job_id, [record]),
            ContentType="application/x-ndjson",
        )

    def read_incomplete(self, job_id: str, start: int, end: int) -> dict[int, FinishedRecord]:
        """The incomplete records with an index in ``[start, end)`` (an unreadable one is skipped).

        Few exist: the records an attempt had started when it ended.
        """
        found: dict[int, FinishedRecord] = {}
        for key in self.incomplete_keys(job_id, start, end):
            try:
                record = decode_line(self.read_bytes(key))
            except ClientError as exc:
                if is_missing(exc):  # completed and dropped meanwhile
                    continue
                raise
            except ValueError as exc:
                log.warning("incomplete_record_unreadable", key=key, error=str(exc))
                continue
            found[record.index] = record
        return found

    def drop_incomplete(self, job_id: str, indices: Iterable[int]) -> None:
        """Delete the incomplete objects of records now written complete in a part."""
        names: list[ObjectIdentifierTypeDef] = [
            {"Key": keys.incomplete_key(job_id, i)} for i in indices
        ]
        for first in range(0, len(names), DELETE_BATCH):
            chunk = names[first : first + DELETE_BATCH]
            self.s3.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under ``prefix``; how many were deleted."""
        deleted = 0
        for page in self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=prefix
        ):
            batch: list[ObjectIdentifierTypeDef] = [
                {"Key": obj["Key"]} for obj in page.get("Contents", [])
            ]
            for first in range(0, len(batch), DELETE_BATCH):
                chunk = batch[first : first + DELETE_BATCH]
                answer = self.s3.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True}
                )
                errors = answer.get("Errors", [])
                if errors:
                    raise RuntimeError(f"S3 refused to delete {len(errors)} objects: {errors[:3]}")
                deleted += len(chunk)
        return deleted

    def open(self, key: str) -> io.BufferedReader:
        """A buffered binary stream over an object (close it when done)."""
        body = self.s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        return buffered(body, READ_BUFFER_BYTES)

    def read_ahead(self, names: Iterable[str], depth: int) -> Iterator[tuple[str, bytes]]:
        """Each object's key and whole body, in the order of ``names``.

        While one is used, the next ``depth`` are read on a pool of their own:
        reading many small objects one after another waits on each request.
        """
        with ThreadPoolExecutor(depth, thread_name_prefix="s3-read-ahead") as pool:
            reading: deque[tuple[str, Future[bytes]]] = deque()
            for name in names:
                reading.append((name, pool.submit(self.read_bytes, name)))
                if len(reading) > depth:
                    first, body = reading.popleft()
                    yield first, body.result()
            while reading:
                first, body = reading.popleft()
                yield first, body.result()

    def read_bytes(self, key: str) -> bytes:
        """An object's whole body."""
        return self.s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def read_seeds(self, key: str, wanted: set[int]) -> dict[int, dict[str, Any]]:
        """One streaming pass over a seed file keeping the positions wanted.

        Raises SeedError for a file that cannot be read as seeds (or is missing).
        """
        if not wanted:
            return {}
        try:
            stream = self.open(key)
        except ClientError as exc:
            if is_missing(exc):
                raise seeds.SeedError(f"seed file {key} does not exist") from exc
            raise
        with stream:
            records = seeds.read_records(stream, seeds.format_from_name(key))
            return seeds.pick_seeds(records, wanted)

    def upload(self, key: str, part_bytes: int, content_type: str) -> MultipartSink:
        """A write-only sink that uploads ``key`` in parts."""
        return MultipartSink(self, key, part_bytes, content_type)


class MultipartSink(io.RawIOBase):
    """A file-like sink that holds at most about one part in memory.

    Full parts go up by multipart upload; a file smaller than one part is put
    with one request (so an empty dataset is still a valid object). ``finish``
    commits, ``abort`` discards.

    Why not a library's transfer helper (checked against aiobotocore 3.10,
    boto3 1.43 and s3transfer 0.19): aiobotocore has none (no
    ``upload_fileobj``, no transfer manager; only the calls made here).
    boto3's ``upload_fileobj`` pulls from an object with ``read``, while the
    format writers (pyarrow's Parquet and CSV writers, the JSONL lines) push
    into a writable file; joining the two takes a pipe and a second thread
    running the transfer. For such a non-seekable source s3transfer holds
    about (``max_in_memory_upload_chunks`` + ``max_submission_concurrency``)
    parts in memory, at least two, where this sink holds one. And at the read
    end of the pipe a writer's failure looks like the end of the data: the
    transfer would commit a truncated object unless the writer's side cancelled
    it first, which is the ``abort`` this sink already has.
    """

    def __init__(self, storage: Storage, key: str, part_bytes: int, content_type: str) -> None:
        self._s3 = storage.s3
        self._bucket = storage.bucket
        self._key = key
        self._part_bytes = part_bytes
        self._content_type = content_type
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[CompletedPartTypeDef] = []
        self._total = 0

    def writable(self) -> bool:
        """Always: the sink is write-only."""
        return True

    def write(self, data: Any) -> int:
        """Append bytes; a full part goes up at once."""
        view = memoryview(data).cast("B")
        self._buffer += view
        self._total += len(view)
        if len(self._buffer) >= self._part_bytes:
            self._upload_part()
        return len(view)

    def tell(self) -> int:
        """Bytes written so far (the position of a write-only stream)."""
        return self._total

    def seekable(self) -> bool:
        """Never: parts already uploaded cannot be rewritten."""
        return False

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._total

    def _upload_part(self) -> None:
        if self._upload_id is None:
            created = self._s3.create_multipart_upload(
                Bucket=self._bucket, Key=self._key, ContentType=self._content_type
            )
            self._upload_id = created["UploadId"]
        number = len(self._parts) + 1
        done = self._s3.upload_part(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=bytes(self._buffer),
        )
        self._parts.append({"ETag": done["ETag"], "PartNumber": number})
        self._buffer.clear()

    def finish(self) -> int:
        """Commit the object; returns its size in bytes."""
        if self._upload_id is None:
            self._s3.put_object(
                Bucket=self._bucket,
                Key=self._key,
                Body=bytes(self._buffer),
                ContentType=self._content_type,
            )
        else:
            if self._buffer:
                self._upload_part()
            self._s3.complete_multipart_upload(
                Bucket=self._bucket,
                Key=self._key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._buffer.clear()
        return self._total

    def abort(self) -> None:
        """Discard an unfinished upload (best effort)."""
        self._buffer.clear()
        if self._upload_id is not None:
            try:
                self._s3.abort_multipart_upload(
                    Bucket=self._bucket, Key=self._key, UploadId=self._upload_id
                )
            except ClientError as exc:
                log.warning("abort_multipart_failed", key=self._key, error=str(exc))
            self._upload_id = None
