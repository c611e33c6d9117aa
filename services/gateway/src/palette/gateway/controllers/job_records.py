"""``/jobs/{id}/records``: a sample of a job's records as their parts land (the viewer)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter

from palette.common.keys import parts_prefix
from palette.gateway.controllers.jobs import owned_job
from palette.gateway.openapi import problems
from palette.gateway.ports import GatewayRuntime
from palette.gateway.schemas.records import RecordSample, SampleRecord

MAX_SAMPLE = 100


def sample_record(line: dict[str, Any], steps: list[str]) -> SampleRecord | None:
    """A part line as a sample record, each step of the job present; None when it is no record."""
    try:
        outputs = {str(k): (None if v is None else str(v)) for k, v in line["outputs"].items()}
        return SampleRecord(
            id=str(line["id"]),
            index=int(line["index"]),
            seed_index=int(line["seed_index"]),
            complete=bool(line.get("complete", True)),
            outputs={step: outputs.get(step) for step in steps} | outputs,
            models={str(k): str(v) for k, v in (line.get("models") or {}).items()},
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def job_steps(job: dict[str, Any]) -> list[str]:
    """The step ids of a job's template snapshot, in order."""
    return [str(step["id"]) for step in (job.get("template") or {}).get("steps") or []]


class JobRecordsController(Controller):
    """Another user's job answers 404."""

    path = "/jobs/{job_id:str}/records"
    tags = ["jobs"]

    @get(
        operation_id="getJobRecords",
        summary="The job's first records written so far, each step's output",
        responses=problems(404),
    )
    async def records(
        self,
        job_id: FromPath[str],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
        limit: Annotated[
            int, QueryParameter(ge=1, le=MAX_SAMPLE, description="Records at most.")
        ] = 20,
    ) -> RecordSample:
        """The lowest-numbered records in the parts written so far (empty before the first).

        A running job's sample grows as parts land; a deleted job's is gone
        with it.
        """
        job = await owned_job(runtime, owner, job_id)
        steps = job_steps(job)
        lines = await runtime.seeds.read_lines(parts_prefix(job_id), limit)
        items = []
        for raw in lines:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            record = sample_record(line, steps) if isinstance(line, dict) else None
            if record is not None:
                items.append(record)
        return RecordSample(job_id=job_id, steps=steps, items=items)
