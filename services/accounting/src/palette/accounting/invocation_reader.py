"""Finding a lease's calls in the model invocation logs in S3 (blocking: run on a thread).

Objects are listed per hour folder
(``<prefix>/AWSLogs/<account>/BedrockModelInvocationLogs/<region>/<yyyy>/<mm>/<dd>/<HH>/``)
for every account found under the prefix. A delivered object never changes,
so each is read and parsed once and kept (least recently used first out).
"""

from __future__ import annotations

import functools
from collections.abc import Collection
from datetime import datetime
from typing import TYPE_CHECKING

from palette.accounting.invocations import LoggedCall, hours, parse_log_object, unique
from palette.common.keys import invocation_log_folder, invocation_logs_root

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

CACHED_OBJECTS = 8192

ByLease = dict[str, tuple[LoggedCall, ...]]


class InvocationLogReader:
    """Reads one bucket's invocation logs of one region.

    Args:
        s3: an S3 client.
        bucket: the bucket the logs are delivered to.
        prefix: their key prefix (may be empty).
        region: the region whose logs to read.
        cached_objects: how many parsed objects to keep.
    """

    def __init__(
        self,
        s3: S3Client,
        bucket: str,
        prefix: str,
        region: str,
        cached_objects: int = CACHED_OBJECTS,
    ) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self.region = region
        self._read = functools.lru_cache(maxsize=cached_objects)(self._fetch)

    def _list(self, prefix: str, delimiter: str = "") -> tuple[list[str], list[str]]:
        keys: list[str] = []
        folders: list[str] = []
        paginator = self._s3.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter=delimiter)
        for page in pages:
            keys += [o["Key"] for o in page.get("Contents", []) if "Key" in o]
            folders += [p["Prefix"] for p in page.get("CommonPrefixes", []) if "Prefix" in p]
        return keys, folders

    def accounts(self) -> list[str]:
        """Account ids that have logs under the prefix."""
        root = invocation_logs_root(self.prefix)
        _, folders = self._list(root, "/")
        return [folder[len(root) :].strip("/") for folder in folders]

    def _fetch(self, key: str) -> ByLease:
        body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        grouped: dict[str, list[LoggedCall]] = {}
        for call in parse_log_object(body, f"s3://{self.bucket}/{key}"):
            grouped.setdefault(call.lease_id, []).append(call)
        return {lease: tuple(calls) for lease, calls in grouped.items()}

    def calls_of(
        self, leases: Collection[str], since: datetime, until: datetime
    ) -> dict[str, list[LoggedCall]]:
        """Every logged call of each lease, delivered in the hours from ``since`` to ``until``.

        Raises:
            InvocationLogError: an object is not an invocation log.
            botocore.exceptions.ClientError: S3 refused a request.
        """
        found: dict[str, list[LoggedCall]] = {lease: [] for lease in leases}
        for account in self.accounts():
            folder = invocation_log_folder(self.prefix, account, self.region)
            for hour in hours(since, until):
                keys, _ = self._list(folder + hour)
                for key in keys:
                    for lease, calls in self._read(key).items():
                        if lease in found:
                            found[lease].extend(calls)
        return {lease: unique(calls) for lease, calls in found.items()}
