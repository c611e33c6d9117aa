"""Factories for the MongoDB and S3 clients (opened in a lifespan, never at import).

And the one reading of an S3 error as "no such object" (``is_missing``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from pymongo import AsyncMongoClient

from palette.common.settings import CommonSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404", "NoSuchBucket"})
"""Error codes S3 answers for an object that is not there.

A HEAD has no body, so its error code is only the status ("404"); a GET says
``NoSuchKey``, or ``NoSuchBucket`` when the bucket is gone too (a HEAD cannot tell
those apart, so neither does ``is_missing``).
"""


def is_missing(error: ClientError) -> bool:
    """Whether an S3 error says the object (or its bucket) does not exist."""
    return str(error.response.get("Error", {}).get("Code", "")) in MISSING_CODES


def object_exists(s3: S3Client, bucket: str, key: str) -> bool:
    """Whether ``key`` holds an object (blocking: one HEAD); other S3 errors raise."""
    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if is_missing(exc):
            return False
        raise
    return True


def mongo_client(settings: CommonSettings) -> AsyncMongoClient[dict[str, Any]]:
    """An async MongoDB client; it connects lazily and reconnects by itself."""
    return AsyncMongoClient(
        settings.mongo_url,
        tz_aware=True,
        serverSelectionTimeoutMS=10_000,
        retryWrites=True,
    )


def s3_client(settings: CommonSettings) -> S3Client:
    """A boto3 S3 client for the configured endpoint (path-style addressing)."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=settings.s3_endpoint_url,
        region_name=settings.aws_region,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=64,
        ),
    )
