"""Batch inference jobs of partitions: where they are recorded and how Bedrock is asked.

``BatchStore`` keeps one document per model invocation job a partition submits,
in the ``batch_invocations`` collection (the generator is its only writer). The
document is inserted, with the job's ``clientRequestToken``, before the job is
created, and gets the job's ARN right after: a generator killed at any point
finds it again (``open_for``) and polls that job, or creates it again under the
same token, which Bedrock answers with the same job. It is marked ``applied``
once the job's results are in parts (or kept as incomplete records).

``BatchClient`` is the blocking side (run in a thread): the ``bedrock`` control
plane (create, get, stop) and the S3 input and output objects of a job.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from palette.common.messages import utcnow
from palette.generator.settings import GeneratorSettings

if TYPE_CHECKING:
    from mypy_boto3_bedrock import BedrockClient
    from mypy_boto3_s3 import S3Client

COLLECTION = "batch_invocations"
ENDED = frozenset({"Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"})


@dataclass(frozen=True, slots=True)
class Submission:
    """One model invocation job of a partition's step."""

    token: str
    job_id: str
    partition: int
    step: str
    model_id: str
    records: tuple[int, ...]
    input_key: str
    output_prefix: str
    lease_id: str
    arn: str | None = None

    def document(self) -> dict[str, Any]:
        """As stored (``_id`` is the token)."""
        return {
            "_id": self.token,
            "job_id": self.job_id,
            "partition": self.partition,
            "step": self.step,
            "model_id": self.model_id,
            "records": list(self.records),
            "input_key": self.input_key,
            "output_prefix": self.output_prefix,
            "lease_id": self.lease_id,
            "arn": self.arn,
            "applied": False,
            "created_at": utcnow(),
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Submission:
        """Back from a stored document."""
        return cls(
            token=doc["_id"],
            job_id=doc["job_id"],
            partition=doc["partition"],
            step=doc["step"],
            model_id=doc["model_id"],
            records=tuple(doc["records"]),
            input_key=doc["input_key"],
            output_prefix=doc["output_prefix"],
            lease_id=doc["lease_id"],
            arn=doc.get("arn"),
        )


class BatchStore:
    """The ``batch_invocations`` collection."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._coll = db[COLLECTION]

    async def create_indexes(self) -> None:
        """The index ``open_for`` reads by."""
        await self._coll.create_index(
            [("job_id", ASCENDING), ("partition", ASCENDING), ("applied", ASCENDING)],
            name="batch_invocations_open",
        )

    async def record(self, submission: Submission) -> None:
        """Insert a submission before its job is created."""
        await self._coll.insert_one(submission.document())

    async def set_arn(self, token: str, arn: str) -> None:
        """The job's ARN, once created."""
        await self._coll.update_one({"_id": token}, {"$set": {"arn": arn}})

    async def open_for(self, job_id: str, partition: int) -> list[Submission]:
        """A partition's submissions whose results are not in parts yet, oldest first."""
        cursor = self._coll.find({"job_id": job_id, "partition": partition, "applied": False})
        docs = await cursor.sort("created_at", ASCENDING).to_list(None)
        return [Submission.from_document(doc) for doc in docs]

    async def mark_applied(self, tokens: Sequence[str]) -> None:
        """Submissions whose results are in parts or kept as incomplete records."""
        if tokens:
            chosen = {"_id": {"$in": list(tokens)}}
            await self._coll.update_many(chosen, {"$set": {"applied": True}})

    async def purge_job(self, job_id: str) -> int:
        """Forget a deleted job's submissions."""
        return (await self._coll.delete_many({"job_id": job_id})).deleted_count


class BatchClient:
    """Blocking calls of a batch: S3 objects and the ``bedrock`` control plane."""

    def __init__(self, settings: GeneratorSettings, s3: S3Client, bucket: str) -> None:
        self.settings = settings
        self.s3 = s3
        self.bucket = bucket
        self._bedrock: BedrockClient | None = None

    @property
    def bedrock(self) -> BedrockClient:
        """The ``bedrock`` control-plane client (opened on first use)."""
        if self._bedrock is None:
            self._bedrock = boto3.session.Session().client(
                "bedrock",
                endpoint_url=self.settings.bedrock_endpoint_url,
                region_name=self.settings.aws_region,
                config=Config(retries={"total_max_attempts": 5, "mode": "standard"}),
            )
        return self._bedrock

    def put_input(self, key: str, lines: Sequence[dict[str, Any]]) -> None:
        """Write a job's input JSON Lines."""
        body = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body.encode())

    def create(self, submission: Submission) -> str:
        """Create the job (or find it again by its token); its ARN."""
        uri = f"s3://{self.bucket}/"
        answer = self.bedrock.create_model_invocation_job(
            jobName=f"palette-{submission.token}"[:63],
            roleArn=self.settings.batch_role_arn,
            clientRequestToken=submission.token,
            modelId=submission.model_id,
            modelInvocationType="Converse",
            inputDataConfig={"s3InputDataConfig": {"s3Uri": uri + submission.input_key}},
            outputDataConfig={"s3OutputDataConfig": {"s3Uri": uri + submission.output_prefix}},
            tags=[
                {"key": "job_id", "value": submission.job_id},
                {"key": "partition", "value": str(submission.partition)},
                {"key": "step", "value": submission.step},
                {"key": "lease_id", "value": submission.lease_id},
            ],
        )
        return str(answer["jobArn"])

    def status(self, arn: str) -> dict[str, Any]:
        """GetModelInvocationJob."""
        return dict(self.bedrock.get_model_invocation_job(jobIdentifier=arn))

    def stop(self, arn: str) -> None:
        """StopModelInvocationJob (a job that ended already is left alone)."""
        with contextlib.suppress(self.bedrock.exceptions.ValidationException):
            self.bedrock.stop_model_invocation_job(jobIdentifier=arn)

    def read_output(self, submission: Submission) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The job's output lines (any order) and its manifest (``{}`` if none)."""
        assert submission.arn is not None
        folder = f"{submission.output_prefix}{submission.arn.rsplit('/', 1)[1]}/"
        name = submission.input_key.rsplit("/", 1)[1]
        lines: list[dict[str, Any]] = []
        manifest: dict[str, Any] = {}
        try:
            body = self.s3.get_object(Bucket=self.bucket, Key=f"{folder}{name}.out")["Body"]
            lines = [json.loads(x) for x in body.read().decode().splitlines() if x.strip()]
            raw = self.s3.get_object(Bucket=self.bucket, Key=f"{folder}manifest.json.out")["Body"]
            manifest = json.loads(raw.read())
        except ClientError as exc:  # a job stopped before any entry ran wrote nothing
            if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
                raise
        return lines, manifest
