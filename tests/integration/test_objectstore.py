"""The dev stack's S3 server that keeps objects on disk (SeaweedFS), for ``palette up``."""

from __future__ import annotations

import signal
import uuid
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest

from palette.devstack.stack import DevStack

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(240)]


def client(stack: DevStack) -> Any:
    return boto3.session.Session().client(
        "s3",
        endpoint_url=stack.s3_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def disk_stack(state_dir: Path) -> DevStack:
    return DevStack(
        state_dir, object_store="seaweedfs", check_rabbitmq=False, invocation_log_prefix=None
    )


class TestSeaweedfsObjectStore:
    def test_objects_survive_kill_9_and_a_new_server(self, tmp_path: Path) -> None:
        objects = {
            f"jobs/{uuid.uuid4().hex}/part-{i}": uuid.uuid4().bytes * (i + 1) for i in range(20)
        }
        with disk_stack(tmp_path) as first:
            s3 = client(first)
            for key, body in objects.items():
                s3.put_object(Bucket=first.bucket, Key=key, Body=body)
            assert first.s3 is not None
            first.s3.stop(sig=signal.SIGKILL)  # a crash: no shutdown of its own
            assert first.s3.returncode == -signal.SIGKILL
        assert (tmp_path / "s3").is_dir()
        with disk_stack(tmp_path) as second:
            s3 = client(second)
            read = {
                key: s3.get_object(Bucket=second.bucket, Key=key)["Body"].read() for key in objects
            }
            assert read == objects

    def test_presigned_get_with_a_quoted_file_name_and_presigned_put(self, tmp_path: Path) -> None:
        with disk_stack(tmp_path) as stack:
            s3 = client(stack)
            put_url = s3.generate_presigned_url(
                "put_object",
                Params={
                    "Bucket": stack.bucket,
                    "Key": "seed-data/u/s.jsonl",
                    "ContentType": "application/x-ndjson",
                    "ContentLength": 9,
                },
                ExpiresIn=60,
            )
            put = httpx.put(
                put_url, content=b'{"a": 1}\n', headers={"Content-Type": "application/x-ndjson"}
            )
            assert put.status_code == 200, put.text
            get_url = s3.generate_presigned_url(
                "get_object",
                Params={
                    "Bucket": stack.bucket,
                    "Key": "seed-data/u/s.jsonl",
                    "ResponseContentDisposition": 'attachment; filename="s.jsonl"',
                },
                ExpiresIn=60,
            )
            got = httpx.get(get_url)
            assert got.status_code == 200, got.text
            assert got.content == b'{"a": 1}\n'
            assert got.headers["content-disposition"] == 'attachment; filename="s.jsonl"'
