"""A batch inference job of the emulator, and how its entries are answered (no I/O).

See ``palette.devstack.batch_jobs`` for the wire format served. An entry is
answered as the online Converse call with its ``modelInput`` as body would be
(``structured_answers.respond``): free text, or for an entry with
``outputConfig`` or a forced ``toolConfig`` the same deterministic JSON that
matches its schema, a share ``invalid_output_rate`` of them missing it.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from palette.devstack.billing import BillingLog
from palette.devstack.converse import ConverseRequestError, parse_request
from palette.devstack.faults import FaultInjector
from palette.devstack.structured_answers import ask_of, respond


@dataclass(slots=True)
class BatchJob:
    """One model invocation job and where it stands."""

    arn: str
    name: str
    model_id: str
    role_arn: str
    input_uri: str
    output_uri: str
    token: str | None
    tags: dict[str, str]
    invocation_type: str
    submit_time: datetime = field(default_factory=lambda: datetime.now(UTC))
    status: str = "Submitted"
    message: str | None = None
    end_time: datetime | None = None
    counts: dict[str, int] = field(default_factory=dict)
    input_name: str = "input.jsonl"
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def job_id(self) -> str:
        """The 12-character id at the end of the ARN."""
        return self.arn.rsplit("/", 1)[1]

    def view(self) -> dict[str, Any]:
        """As GetModelInvocationJob answers it (a summary of ListModelInvocationJobs too)."""
        body: dict[str, Any] = {
            "jobArn": self.arn,
            "jobName": self.name,
            "modelId": self.model_id,
            "roleArn": self.role_arn,
            "status": self.status,
            "submitTime": self.submit_time.isoformat(),
            "lastModifiedTime": (self.end_time or self.submit_time).isoformat(),
            "inputDataConfig": {"s3InputDataConfig": {"s3Uri": self.input_uri}},
            "outputDataConfig": {"s3OutputDataConfig": {"s3Uri": self.output_uri}},
            "modelInvocationType": self.invocation_type,
            **{k: v for k, v in self.counts.items() if k.endswith("RecordCount")},
        }
        if self.token:
            body["clientRequestToken"] = self.token
        if self.message:
            body["message"] = self.message
        if self.end_time:
            body["endTime"] = self.end_time.isoformat()
        return body


def split_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` as (bucket, key); ValueError otherwise."""
    if not uri.startswith("s3://") or len(uri) <= len("s3://"):
        raise ValueError(f"not an S3 URI: {uri!r}")
    bucket, _, key = uri[len("s3://") :].partition("/")
    return bucket, key


def answer_entries(
    job: BatchJob,
    entries: list[dict[str, Any]],
    faults: FaultInjector,
    stats: Counter[str],
    billing: BillingLog,
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Each entry's output line (billing the answered ones) and the manifest's counts.

    ``faults``: the emulator's, for its live configuration (``batch_error_rate``,
    ``invalid_output_rate``) and its draws of invalid answers; ``stats`` counts
    them (``invalid_output``) as for online calls.
    """
    config = faults.config
    rng = random.Random(config.seed)  # noqa: S311 - test double
    counts = dict.fromkeys(
        ("processedRecordCount", "successRecordCount", "errorRecordCount"), 0
    ) | {"inputTokenCount": 0, "outputTokenCount": 0}
    lines: list[dict[str, Any]] = []
    for entry in entries:
        record_id = str(entry.get("recordId", ""))
        body: Any = entry.get("modelInput")
        line: dict[str, Any] = {"recordId": record_id, "modelInput": body}
        counts["processedRecordCount"] += 1
        try:
            call = parse_request(body)  # a JSON object from here on
            ask = ask_of(job.model_id, body)
            if rng.random() < config.batch_error_rate:
                raise ConverseRequestError("Model failed to process the record (injected).")
        except ConverseRequestError as exc:
            line["error"] = {"errorCode": 400, "errorMessage": str(exc)}
            counts["errorRecordCount"] += 1
            lines.append(line)
            continue
        done = respond(job.model_id, call, ask, faults, stats)
        line["modelOutput"] = done.body(0.0) | {"serviceTier": {"type": "default"}}
        counts["successRecordCount"] += 1
        counts["inputTokenCount"] += done.input_tokens
        counts["outputTokenCount"] += done.output_tokens
        metadata = job.tags | {"invocation_job": job.job_id, "record_id": record_id}
        billing.record(
            f"{job.job_id}:{record_id}",
            job.model_id,
            done.input_tokens,
            done.output_tokens,
            metadata,
            job.submit_time,
            "batch",
        )
        lines.append(line)
    rng.shuffle(lines)
    return lines, counts
