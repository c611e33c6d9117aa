"""Bedrock batch inference (model invocation jobs), as the emulator serves it.

The control-plane calls of the ``bedrock`` service, in botocore's REST-JSON wire
form (``botocore/data/bedrock/2023-04-20/service-2.json``):

- ``POST /model-invocation-job`` (CreateModelInvocationJob): ``jobName``,
  ``roleArn``, ``modelId``, ``inputDataConfig.s3InputDataConfig.s3Uri``,
  ``outputDataConfig.s3OutputDataConfig.s3Uri``, optional ``clientRequestToken``
  (a token seen before answers the job it created: no second job), ``tags`` and
  ``modelInvocationType`` (``Converse`` is served); answers ``{"jobArn"}``.
- ``GET /model-invocation-job/{jobIdentifier}`` (the ARN or its 12-character id); the
  next ``batch_status_errors`` of them answer ``InternalServerException`` (500), a
  control plane that fails while a job runs.
- ``GET /model-invocation-jobs`` (``statusEquals``, ``nameContains``,
  ``maxResults``, ``nextToken``, ``sortOrder``).
- ``POST /model-invocation-job/{jobIdentifier}/stop``: a running job ends
  ``Stopped`` with only what ran so far written and billed; an ended one is a
  ``ValidationException``.

A job reads its input JSON Lines (``{"recordId", "modelInput"}``, ``modelInput``
a Converse request body) from the S3 server, runs for ``batch_delay_ms`` (its
entries finish evenly over that time), then writes
``{output s3Uri}/{job id}/{input file name}.out`` (one line per entry:
``recordId``, ``modelInput`` and ``modelOutput`` (a Converse response body) or
``error`` ``{"errorCode", "errorMessage"}``; the lines are shuffled, as Bedrock
does not keep their order) and ``{output s3Uri}/{job id}/manifest.json.out``
(``totalRecordCount``, ``processedRecordCount``, ``successRecordCount``,
``errorRecordCount``, ``inputTokenCount``, ``outputTokenCount``). An entry is
answered as its online Converse call would be: free text, or for a structured
entry (``outputConfig``, forced tool use) schema-matching JSON, a share
``invalid_output_rate`` of it invalid (``batch_job.answer_entries``). A share
``batch_error_rate`` of entries is answered with an error (not billed). Every
answered entry is billed in the billing log at the ``batch`` rate, its
``request_metadata`` the job's tags plus ``invocation_job`` and ``record_id``.
A job of fewer than ``batch_min_records`` or more than ``batch_max_records``
entries ends ``Failed`` with nothing billed. ``submissions`` counts the jobs created.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import boto3
from botocore.config import Config

from palette.devstack.batch_job import BatchJob, answer_entries, split_uri
from palette.devstack.billing import BillingLog
from palette.devstack.emulator_errors import ERROR_MESSAGES, INVALID_MODEL, error_response
from palette.devstack.faults import FaultInjector
from palette.devstack.httpd import Request, Response, json_response

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger("palette.devstack.batch_jobs")

ARN_PREFIX = "arn:aws:bedrock:{region}:{account}:model-invocation-job/"
ENDED = frozenset({"Completed", "PartiallyCompleted", "Failed", "Stopped", "Expired"})
INTERNAL = "InternalServerException"
JOB_PATH = "/model-invocation-job"
JOB_ID_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789"


class BatchJobs:
    """The model invocation jobs of one emulator: create, get, list, stop, run."""

    def __init__(
        self,
        faults: FaultInjector,
        stats: Counter[str],
        models: frozenset[str],
        billing: BillingLog,
        s3_endpoint_url: str | None,
        region: str = "us-east-1",
        account: str = "000000000000",
    ) -> None:
        self._faults = faults
        self._stats = stats
        self.models = models
        self.billing = billing
        self.prefix = ARN_PREFIX.format(region=region, account=account)
        self._s3_endpoint_url = s3_endpoint_url
        self._region = region
        self._s3: S3Client | None = None
        self.jobs: dict[str, BatchJob] = {}
        self._tokens: dict[str, str] = {}
        self._lock = threading.Lock()
        self.submissions = 0

    def s3(self) -> S3Client:
        """The S3 client jobs read and write with (opened on first use)."""
        if self._s3 is None:
            self._s3 = boto3.session.Session().client(
                "s3",
                endpoint_url=self._s3_endpoint_url,
                region_name=self._region,
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}),
            )
        return self._s3

    def __call__(self, request: Request) -> Response:
        """Route one control-plane request under ``/model-invocation-job[s]``."""
        request_id = secrets.token_hex(16)
        path, method = request.path.rstrip("/"), request.method
        if path == "/model-invocation-jobs" and method == "GET":
            return self.listing(request.query)
        if path == JOB_PATH and method == "POST":
            return self.create(request, request_id)
        parts = path[len(JOB_PATH) + 1 :].split("/") if path.startswith(JOB_PATH + "/") else []
        job = self.find(parts[0]) if parts else None
        if len(parts) in (1, 2) and job is None:
            message = f"Could not find model invocation job {unquote(parts[0])!r}."
            return error_response("ResourceNotFoundException", message, request_id)
        if job is not None and len(parts) == 1 and method == "GET":
            return self.get(job, request_id)
        if job is not None and len(parts) == 2 and parts[1] == "stop" and method == "POST":
            return self.stop(job, request_id)
        return error_response("UnknownOperationException", "Unknown operation.", request_id)

    def find(self, identifier: str) -> BatchJob | None:
        """The job an ARN or a job id names."""
        return self.jobs.get(unquote(identifier).rsplit("/", 1)[-1])

    def get(self, job: BatchJob, request_id: str) -> Response:
        """GetModelInvocationJob (or the error ``batch_status_errors`` asks for)."""
        if self._faults.status_error():
            return error_response(INTERNAL, ERROR_MESSAGES[INTERNAL], request_id)
        return json_response(200, job.view(), [("x-amzn-RequestId", request_id)])

    def create(self, request: Request, request_id: str) -> Response:
        """CreateModelInvocationJob."""
        try:
            body = request.json()
            job = self._new_job(body)
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return error_response("ValidationException", str(exc) or "Malformed input.", request_id)
        with self._lock:
            known = self._tokens.get(job.token or "")
            if known is not None:
                return json_response(200, {"jobArn": known}, [("x-amzn-RequestId", request_id)])
            self.jobs[job.job_id] = job
            if job.token:
                self._tokens[job.token] = job.arn
            self.submissions += 1
        threading.Thread(target=self._run, args=(job,), daemon=True, name="batch-job").start()
        return json_response(200, {"jobArn": job.arn}, [("x-amzn-RequestId", request_id)])

    def _new_job(self, body: Any) -> BatchJob:
        if not isinstance(body, dict):
            raise TypeError("The request body must be a JSON object.")
        for name in ("jobName", "roleArn", "modelId", "inputDataConfig", "outputDataConfig"):
            if not body.get(name):
                raise ValueError(f"{name} is required.")
        if body["modelId"] not in self.models:
            raise ValueError(INVALID_MODEL)
        invocation_type = body.get("modelInvocationType") or "InvokeModel"
        if invocation_type != "Converse":
            raise ValueError("The emulator serves modelInvocationType Converse only.")
        input_uri = body["inputDataConfig"]["s3InputDataConfig"]["s3Uri"]
        output_uri = body["outputDataConfig"]["s3OutputDataConfig"]["s3Uri"]
        split_uri(input_uri), split_uri(output_uri)
        tags = {str(t["key"]): str(t["value"]) for t in body.get("tags") or []}
        return BatchJob(
            arn=self.prefix + "".join(secrets.choice(JOB_ID_CHARS) for _ in range(12)),
            name=str(body["jobName"]),
            model_id=body["modelId"],
            role_arn=str(body["roleArn"]),
            input_uri=input_uri,
            output_uri=output_uri,
            token=body.get("clientRequestToken"),
            tags=tags,
            invocation_type=invocation_type,
        )

    def listing(self, query: dict[str, str]) -> Response:
        """ListModelInvocationJobs (oldest first unless ``sortOrder=Descending``)."""
        with self._lock:
            jobs = list(self.jobs.values())
        if status := query.get("statusEquals"):
            jobs = [j for j in jobs if j.status == status]
        if name := query.get("nameContains"):
            jobs = [j for j in jobs if name in j.name]
        jobs.sort(key=lambda j: j.submit_time, reverse=query.get("sortOrder") == "Descending")
        start = int(query.get("nextToken") or 0)
        size = int(query.get("maxResults") or 1000)
        page = jobs[start : start + size]
        body: dict[str, Any] = {"invocationJobSummaries": [j.view() for j in page]}
        if start + size < len(jobs):
            body["nextToken"] = str(start + size)
        return json_response(200, body)

    def stop(self, job: BatchJob, request_id: str) -> Response:
        """StopModelInvocationJob: a running job stops, keeping (and billing) what ran."""
        with self._lock:
            if job.status in ENDED or job.status == "Stopping":
                message = f"The job is {job.status} and cannot be stopped."
                return error_response("ValidationException", message, request_id)
            job.status = "Stopping"
            job.stop.set()
        return json_response(200, {}, [("x-amzn-RequestId", request_id)])

    def _run(self, job: BatchJob) -> None:
        """Run one job on its own thread: read, wait (or be stopped), answer, write, bill."""
        try:
            self._execute(job)
        except Exception as exc:  # the job fails, as Bedrock's does, with the reason
            log.exception("batch job %s failed", job.arn)
            self._end(job, "Failed", f"{type(exc).__name__}: {exc}")

    def _execute(self, job: BatchJob) -> None:
        config = self._faults.config
        entries = self._read_input(job)
        if not config.batch_min_records <= len(entries) <= config.batch_max_records:
            message = (
                f"The job has {len(entries)} records: a job takes between "
                f"{config.batch_min_records} and {config.batch_max_records}."
            )
            self._end(job, "Failed", message)
            return
        with self._lock:
            if job.status == "Submitted":
                job.status = "InProgress"
        delay = config.batch_delay_ms / 1000.0
        started = time.monotonic()
        stopped = job.stop.wait(delay)
        share = min(1.0, (time.monotonic() - started) / delay) if stopped and delay else 1.0
        ran = len(entries) if not stopped else int(len(entries) * share)
        lines, counts = answer_entries(job, entries[:ran], self._faults, self._stats, self.billing)
        counts["totalRecordCount"] = len(entries)
        self._write_output(job, lines, counts)
        job.counts = counts
        if stopped:
            self._end(job, "Stopped", None)
        else:
            self._end(
                job, "PartiallyCompleted" if counts["errorRecordCount"] else "Completed", None
            )

    def _read_input(self, job: BatchJob) -> list[dict[str, Any]]:
        bucket, key = split_uri(job.input_uri)
        s3 = self.s3()
        if key.endswith(".jsonl"):
            keys = [key]
        else:
            listed = s3.list_objects_v2(Bucket=bucket, Prefix=key).get("Contents", [])
            keys = sorted(o["Key"] for o in listed if o["Key"].endswith(".jsonl"))
        entries: list[dict[str, Any]] = []
        for name in keys:
            text = s3.get_object(Bucket=bucket, Key=name)["Body"].read().decode("utf-8")
            entries += [json.loads(line) for line in text.splitlines() if line.strip()]
        if keys:
            job.input_name = keys[0].rsplit("/", 1)[-1]
        return entries

    def _write_output(
        self, job: BatchJob, lines: list[dict[str, Any]], counts: dict[str, int]
    ) -> None:
        bucket, prefix = split_uri(job.output_uri)
        folder = f"{prefix.rstrip('/')}/{job.job_id}/" if prefix else f"{job.job_id}/"
        name = job.input_name
        body = "".join(json.dumps(line) + "\n" for line in lines).encode()
        s3 = self.s3()
        s3.put_object(Bucket=bucket, Key=f"{folder}{name}.out", Body=body)
        s3.put_object(
            Bucket=bucket, Key=f"{folder}manifest.json.out", Body=json.dumps(counts).encode()
        )

    def _end(self, job: BatchJob, status: str, message: str | None) -> None:
        with self._lock:
            job.status = status
            job.message = message
            job.end_time = datetime.now(UTC)

    def status(self) -> dict[str, Any]:
        """The control API's view: submissions and every job with its status and counts."""
        with self._lock:
            jobs = [j.view() | {"tags": j.tags} for j in self.jobs.values()]
        return {"submissions": self.submissions, "jobs": jobs}
