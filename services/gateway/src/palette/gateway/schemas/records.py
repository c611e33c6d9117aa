"""Body of ``GET /jobs/{id}/records``: a sample of the records a job has written."""

from __future__ import annotations

from pydantic import Field

from palette.gateway.schemas.base import Reply


class SampleRecord(Reply):
    """One record as its part holds it."""

    id: str = Field(description="`<job id>-<index>`.")
    index: int
    seed_index: int = Field(description="The seed record it was made from (counted from 0).")
    complete: bool = Field(description="False when later steps never ran (the job stopped).")
    outputs: dict[str, str | None] = Field(
        description="Each step's output by step id; null for a step not made (yet)."
    )
    models: dict[str, str] = Field(description="The model of each step made.")


class RecordSample(Reply):
    """The job's lowest-numbered records written so far (parts land as partitions run)."""

    job_id: str
    steps: list[str] = Field(description="The job's step ids, in order.")
    items: list[SampleRecord]
