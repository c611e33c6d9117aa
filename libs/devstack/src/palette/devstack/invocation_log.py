"""Bedrock's model invocation logging, as the emulator delivers it to S3.

Amazon Bedrock can log every model invocation of an account and region to an
S3 bucket: gzipped JSON Lines objects under
``<prefix>/AWSLogs/<account>/BedrockModelInvocationLogs/<region>/<yyyy>/<mm>/<dd>/<HH>/``,
one record per invocation with ``schemaType`` ``"ModelInvocationLog"``,
``timestamp``, ``requestId``, ``operation``, ``modelId``,
``input.inputTokenCount``, ``output.outputTokenCount`` and the call's
``requestMetadata``. The emulator writes the same for every billed call (a
billed timeout included), batched: the calls billed since the last delivery
go out every ``flush_seconds`` as one object. Text bodies are not logged (as
with Bedrock's text data delivery turned off).

The record, key and batch encoding are pure functions; ``InvocationLogDelivery``
does the I/O on a thread of its own.
"""

from __future__ import annotations

import gzip
import json
import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from palette.common.keys import invocation_log_folder

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("palette.devstack.invocation_log")

SCHEMA_TYPE = "ModelInvocationLog"
SCHEMA_VERSION = "1.0"


def invocation_record(
    *,
    request_id: str,
    model_id: str,
    input_tokens: int,
    output_tokens: int,
    request_metadata: Mapping[str, str],
    at: datetime,
    account: str,
    region: str,
    operation: str = "Converse",
    cache_read_tokens: int = 0,
    cache_write_tokens: int = 0,
) -> dict[str, Any]:
    """One log record, in the shape Bedrock writes (without the text bodies).

    A call that read from or wrote to the prompt cache has
    ``input.cacheReadInputTokenCount`` and ``input.cacheWriteInputTokenCount``.
    """
    cache = (
        {
            "cacheReadInputTokenCount": cache_read_tokens,
            "cacheWriteInputTokenCount": cache_write_tokens,
        }
        if cache_read_tokens or cache_write_tokens
        else {}
    )
    return {
        "schemaType": SCHEMA_TYPE,
        "schemaVersion": SCHEMA_VERSION,
        "timestamp": at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "accountId": account,
        "region": region,
        "requestId": request_id,
        "operation": operation,
        "modelId": model_id,
        "input": {
            "inputContentType": "application/json",
            "inputTokenCount": input_tokens,
            **cache,
        },
        "output": {"outputContentType": "application/json", "outputTokenCount": output_tokens},
        "requestMetadata": dict(request_metadata),
    }


def object_key(prefix: str, account: str, region: str, at: datetime) -> str:
    """Where a batch delivered at ``at`` goes: the hour folder, then a unique name."""
    at = at.astimezone(UTC)
    name = f"{at:%Y%m%dT%H%M%S}{at.microsecond // 1000:03d}Z_{uuid.uuid4().hex[:16]}.json.gz"
    return f"{invocation_log_folder(prefix, account, region)}{at:%Y/%m/%d/%H}/{name}"


def encode_batch(records: Sequence[Mapping[str, Any]]) -> bytes:
    """Records as gzipped JSON Lines."""
    lines = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
    return gzip.compress(lines.encode(), mtime=0)


class InvocationLogDelivery:
    """Buffers records and puts them to S3 as one object every ``flush_seconds``.

    A failed put keeps its records for the next round (logged, never dropped).

    Args:
        bucket: the destination bucket.
        prefix: the key prefix configured for the logs (may be empty).
        account: the account id in the keys and records.
        region: the region in the keys and records.
        flush_seconds: delivery period.
        s3_endpoint_url: S3 endpoint (None: AWS's own).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str,
        *,
        account: str,
        region: str,
        flush_seconds: float,
        s3_endpoint_url: str | None = None,
    ) -> None:
        if flush_seconds <= 0:
            raise ValueError("flush_seconds must be positive")
        self.bucket = bucket
        self.prefix = prefix
        self.account = account
        self.region = region
        self.flush_seconds = flush_seconds
        self._s3: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=s3_endpoint_url,
            region_name=region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
        )
        self._pending: list[dict[str, Any]] = []
        self._oldest: datetime | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="invocation-log")
        self.delivered_records = 0
        self.delivered_objects = 0
        self.failures = 0
        self.slowest_seconds = 0.0
        """Longest time from a call's billing to its record being in S3."""

    def add(self, billed: Mapping[str, Any]) -> None:
        """Queue one billed call (an entry of ``palette.devstack.billing.BillingLog``)."""
        at = datetime.fromisoformat(billed["at"])
        record = invocation_record(
            request_id=billed["request_id"],
            model_id=billed["model_id"],
            input_tokens=billed["input_tokens"],
            output_tokens=billed["output_tokens"],
            request_metadata=billed["request_metadata"],
            at=at,
            account=self.account,
            region=self.region,
            cache_read_tokens=billed.get("cache_read_tokens", 0),
            cache_write_tokens=billed.get("cache_write_tokens", 0),
        )
        with self._lock:
            self._pending.append(record)
            self._oldest = self._oldest or at

    def flush(self) -> int:
        """Deliver what is queued now as one object; the number of records delivered."""
        with self._lock:
            batch, self._pending = self._pending, []
            oldest, self._oldest = self._oldest, None
        if not batch or oldest is None:
            return 0
        key = object_key(self.prefix, self.account, self.region, datetime.now(UTC))
        try:
            self._s3.put_object(Bucket=self.bucket, Key=key, Body=encode_batch(batch))
        except Exception:
            log.exception("invocation log delivery to s3://%s/%s failed", self.bucket, key)
            self.failures += 1
            with self._lock:
                self._pending[:0] = batch
                self._oldest = oldest
            return 0
        lag = (datetime.now(UTC) - oldest).total_seconds()
        self.slowest_seconds = max(self.slowest_seconds, lag)
        self.delivered_records += len(batch)
        self.delivered_objects += 1
        return len(batch)

    def status(self) -> dict[str, Any]:
        """Where the logs go and how delivery went so far."""
        with self._lock:
            pending = len(self._pending)
        return {
            "bucket": self.bucket,
            "prefix": self.prefix,
            "folder": invocation_log_folder(self.prefix, self.account, self.region),
            "flush_seconds": self.flush_seconds,
            "pending": pending,
            "delivered_records": self.delivered_records,
            "delivered_objects": self.delivered_objects,
            "failures": self.failures,
            "slowest_seconds": round(self.slowest_seconds, 3),
        }

    def start(self) -> InvocationLogDelivery:
        """Start delivering in the background."""
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def close(self) -> None:
        """Stop the background delivery and deliver what is left."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.flush()
