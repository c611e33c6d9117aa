"""Bedrock batch inference jobs as both their users see them: following, stopping, reading.

The generator submits a partition's batch jobs and applies their output to its
records; accounting counts what the jobs of a lost holder's lease ran (see
docs/internals.md, "Batch mode"). Both follow a job the same way, so it is
here: ``BatchControl`` is the blocking side (run it in a thread) of the
``bedrock`` control plane (get, stop, find a job by the name its
``clientRequestToken`` gave it) and of a job's S3 output, and ``usage_of``
counts the answered entries of an output.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection, Iterable
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from palette.common.clients import is_missing

if TYPE_CHECKING:
    from mypy_boto3_bedrock import BedrockClient
    from mypy_boto3_s3 import S3Client

COLLECTION = "batch_invocations"
"""One document per batch job a partition submits (the generator is its only writer)."""
ENDED = frozenset({"Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"})
"""A job's statuses after which it runs (and bills) nothing more."""
BATCH_CALL = "batch:"
"""How an attempt's end names a batch job it submitted and did not apply (an unknown call)."""


def batch_call_id(token: str) -> str:
    """The unknown-call id of the job submitted under ``token``."""
    return f"{BATCH_CALL}{token}"


def job_name(token: str) -> str:
    """The ``jobName`` of the job submitted under ``token`` (its ``clientRequestToken``)."""
    return f"palette-{token}"[:63]


def tokens_of(line: dict[str, Any]) -> tuple[int, int] | None:
    """An output line's billed input and output tokens (None: the entry failed, unbilled)."""
    output = line.get("modelOutput")
    if output is None:
        return None
    return int(output["usage"]["inputTokens"]), int(output["usage"]["outputTokens"])


def usage_of(lines: Iterable[dict[str, Any]], records: Collection[int]) -> tuple[int, int, int]:
    """Answered entries of ``records`` in an output, and their input and output tokens.

    An entry answered with an ``error`` is not billed; an entry of another
    record is not the job's.
    """
    calls = tokens_in = tokens_out = 0
    for line in lines:
        tokens = tokens_of(line)
        if tokens is None or int(line.get("recordId", "-1")) not in records:
            continue
        calls += 1
        tokens_in += tokens[0]
        tokens_out += tokens[1]
    return calls, tokens_in, tokens_out


class BatchControl:
    """Blocking calls to follow a batch job: the ``bedrock`` control plane and its S3 output."""

    def __init__(
        self, s3: S3Client, bucket: str, endpoint_url: str | None, region: str | None
    ) -> None:
        self.s3 = s3
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        self.region = region
        self._bedrock: BedrockClient | None = None

    @property
    def bedrock(self) -> BedrockClient:
        """The ``bedrock`` control-plane client (opened on first use)."""
        if self._bedrock is None:
            self._bedrock = boto3.session.Session().client(
                "bedrock",
                endpoint_url=self.endpoint_url,
                region_name=self.region,
                config=Config(retries={"total_max_attempts": 5, "mode": "standard"}),
            )
        return self._bedrock

    def status(self, arn: str) -> dict[str, Any]:
        """GetModelInvocationJob."""
        return dict(self.bedrock.get_model_invocation_job(jobIdentifier=arn))

    def stop(self, arn: str) -> None:
        """StopModelInvocationJob (a job that ended already is left alone)."""
        with contextlib.suppress(self.bedrock.exceptions.ValidationException):
            self.bedrock.stop_model_invocation_job(jobIdentifier=arn)

    def find(self, token: str) -> str | None:
        """The ARN of the job created under ``token``, None if there is none."""
        name = job_name(token)
        pages = self.bedrock.get_paginator("list_model_invocation_jobs")
        for page in pages.paginate(nameContains=name):
            for job in page.get("invocationJobSummaries", []):
                if job["jobName"] == name:
                    return str(job["jobArn"])
        return None

    def read_output(
        self, output_prefix: str, input_key: str, arn: str
    ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """A job's output lines (any order) and its manifest (``{}`` if none)."""
        folder = f"{output_prefix}{arn.rsplit('/', 1)[1]}/"
        name = input_key.rsplit("/", 1)[1]
        lines: list[dict[str, Any]] = []
        manifest: dict[str, Any] = {}
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=f"{folder}{name}.out")["Body"]
            lines = [json.loads(x) for x in body.read().decode().splitlines() if x.strip()]
            raw = self.s3.get_object(Bucket=self.bucket, Key=f"{folder}manifest.json.out")["Body"]
            manifest = json.loads(raw.read())
        except ClientError as exc:  # a job stopped before any entry ran wrote nothing
            if not is_missing(exc):
                raise
        return lines, manifest
