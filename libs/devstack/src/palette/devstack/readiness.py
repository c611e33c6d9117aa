"""One-shot checks that a server answers (each returns True or raises)."""

from __future__ import annotations

import asyncio
import threading
import urllib.request
from urllib.parse import urlsplit, urlunsplit

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from pymongo import MongoClient

_QUICK = Config(
    connect_timeout=1,
    read_timeout=2,
    retries={"total_max_attempts": 1},
    s3={"addressing_style": "path"},
)


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether GET ``url`` answers 200."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - local URL
        return int(response.status) == 200


def mongo_ping(url: str, timeout_ms: int = 1000) -> bool:
    """Whether the MongoDB server at ``url`` answers ``ping``."""
    client: MongoClient[dict[str, object]] = MongoClient(
        url, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms
    )
    try:
        return bool(client.admin.command("ping").get("ok"))
    finally:
        client.close()


def s3_create_bucket(endpoint_url: str, bucket: str) -> bool:
    """Create ``bucket`` on the S3 server at ``endpoint_url`` (fine if it exists)."""
    s3 = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - moto accepts any key
        config=_QUICK,
    )
    try:
        # HEAD, not a listing: SeaweedFS lists only the buckets its caller made,
        # and its anonymous caller of a later start is not the one that made it.
        try:
            s3.head_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in {"404", "NoSuchBucket"}:
                raise
            s3.create_bucket(Bucket=bucket)
        return True
    finally:
        s3.close()


def check_rabbitmq(url: str, timeout: float = 10.0) -> None:
    """Connect to RabbitMQ with ``url``'s credentials and disconnect.

    Raises:
        ConnectionError: the broker cannot be reached or refuses the login.
    """
    failure: list[BaseException] = []

    async def connect() -> None:
        import aio_pika

        connection = await aio_pika.connect(url, timeout=timeout)
        await connection.close()

    def run() -> None:
        try:
            asyncio.run(connect())
        except BaseException as exc:
            failure.append(exc)

    # A thread of its own, so this works whether or not the caller runs an event loop.
    thread = threading.Thread(target=run, name="rabbitmq-check", daemon=True)
    thread.start()
    thread.join(timeout + 5.0)
    if thread.is_alive() or failure:
        parts = urlsplit(url)
        safe = urlunsplit(parts._replace(netloc=f"{parts.hostname}:{parts.port or 5672}"))
        reason = repr(failure[0]) if failure else "timed out"
        raise ConnectionError(f"RabbitMQ at {safe} is not reachable: {reason}")
