"""Batch inference jobs of partitions: where they are recorded and how Bedrock is asked.

``BatchStore`` keeps one document per model invocation job a partition submits,
in the ``batch_invocations`` collection (the generator is its only writer). The
document is inserted, with the job's ``clientRequestToken``, before the job is
created, and gets the job's ARN right after: a generator killed at any point
finds it again (``open_for``) and polls that job, or looks it up by the name its
token gave it (never creating it again: a job not found was never created, and a
lost holder's lease, which accounting settles with its jobs, would not pay for
it). Accounting reads the collection (the jobs of a held lease). A document is
marked ``applied`` once the job's results are in parts (or kept as incomplete
records): by the attempt that followed it, else by the job's export
(``batch_salvage``).

``BatchClient`` is the blocking side (run in a thread): ``BatchControl``'s
``bedrock`` control plane (get, stop, find) and output, plus creating a job and
writing its input.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from palette.common.batch_jobs import COLLECTION, BatchControl, job_name
from palette.common.messages import utcnow
from palette.generator.settings import GeneratorSettings

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


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
        """The indexes ``open_for`` and accounting (a lease's jobs) read by."""
        await self._coll.create_index(
            [("job_id", ASCENDING), ("partition", ASCENDING), ("applied", ASCENDING)],
            name="batch_invocations_open",
        )
        await self._coll.create_index("lease_id", name="batch_invocations_lease")

    async def record(self, submission: Submission) -> None:
        """Insert a submission before its job is created."""
        await self._coll.insert_one(submission.document())

    async def set_arn(self, token: str, arn: str) -> None:
        """The job's ARN, once created."""
        await self._coll.update_one({"_id": token}, {"$set": {"arn": arn}})

    async def open_for(self, job_id: str, partition: int) -> list[Submission]:
        """A partition's submissions whose results are not in parts yet, oldest first."""
        return await self._unapplied({"job_id": job_id, "partition": partition})

    async def unapplied(self, job_id: str) -> list[Submission]:
        """Every submission of the job whose results are not applied yet, oldest first."""
        return await self._unapplied({"job_id": job_id})

    async def _unapplied(self, query: dict[str, Any]) -> list[Submission]:
        cursor = self._coll.find({**query, "applied": False})
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


class BatchClient(BatchControl):
    """Blocking calls of a batch: S3 objects and the ``bedrock`` control plane."""

    def __init__(self, settings: GeneratorSettings, s3: S3Client, bucket: str) -> None:
        super().__init__(s3, bucket, settings.bedrock_endpoint_url, settings.aws_region)
        self.settings = settings

    def put_input(self, key: str, lines: Sequence[dict[str, Any]]) -> None:
        """Write a job's input JSON Lines."""
        body = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
        self.s3.put_object(Bucket=self.bucket, Key=key, Body=body.encode())

    def create(self, submission: Submission) -> str:
        """Create the job (or find it again by its token); its ARN."""
        uri = f"s3://{self.bucket}/"
        answer = self.bedrock.create_model_invocation_job(
            jobName=job_name(submission.token),
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

    def output_of(self, submission: Submission) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The job's output lines (any order) and its manifest (``{}`` if none)."""
        assert submission.arn is not None
        return self.read_output(submission.output_prefix, submission.input_key, submission.arn)
