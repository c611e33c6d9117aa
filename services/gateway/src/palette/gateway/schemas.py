"""Request and response bodies of the REST API.

These are the API's own types, kept apart from the message contracts in
``palette.common.messages``: requests forbid unknown fields, and amounts of
money cross the API as decimal USD strings.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from palette.common.messages import MAX_RECORDS, JobStatus, OutputFormat
from palette.common.seeds import SeedFormat
from palette.common.templates import MAX_PROMPT_CHARS, MAX_STEPS, STEP_ID

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
PosInt = Annotated[int, Field(ge=1)]


class Request(BaseModel):
    """Base of request bodies: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Reply(BaseModel):
    """Base of response bodies."""

    model_config = ConfigDict(frozen=True)


# ---------------------------------------------------------------- templates


class StepIn(Request):
    """One model call of a template."""

    id: Annotated[str, Field(pattern=STEP_ID, description="Unique step id, e.g. `question`.")]
    model: Annotated[str, Field(min_length=1, max_length=200, description="A priced model id.")]
    prompt: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_PROMPT_CHARS,
            description="Jinja2 prompt: seed fields by name, earlier steps as steps.<id>.output.",
        ),
    ]
    system: Annotated[str | None, Field(max_length=MAX_PROMPT_CHARS)] = None
    max_tokens: Annotated[int, Field(ge=1, le=64_000)] = 512
    temperature: Annotated[float, Field(ge=0.0, le=1.0)] = 0.7


class CreateTemplate(Request):
    """Body of ``POST /templates``."""

    name: Name
    steps: Annotated[list[StepIn], Field(min_length=1, max_length=MAX_STEPS)]
    public: bool = False


class StepOut(Reply):
    """A stored template step."""

    id: str
    model: str
    prompt: str
    system: str | None = None
    max_tokens: int
    temperature: float


class TemplateView(Reply):
    """A template version."""

    id: str
    version: int
    name: str
    public: bool
    steps: list[StepOut]
    schema_requirements: list[str] = Field(
        description="Seed fields (dotted paths) every seed record must have."
    )
    created_at: datetime


# -------------------------------------------------------------------- seeds


class SeedUpload(Reply):
    """Answer of ``POST /seed-data``."""

    key: str = Field(description="S3 key to pass as a job's `seed_key`.")
    records: int
    format: SeedFormat
    bytes: int


# --------------------------------------------------------------------- jobs


class CreateJob(Request):
    """Body of ``POST /jobs``."""

    template_id: Annotated[str, Field(min_length=1, max_length=200)]
    template_version: PosInt | None = Field(None, description="Latest version when omitted.")
    seed_key: Annotated[str, Field(min_length=1, max_length=1024)]
    num_records: Annotated[int, Field(ge=1, le=MAX_RECORDS)]
    budget_usd: Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=12)] = Field(
        description="Hard cap on spend, in USD (a JSON number or a decimal string)."
    )
    output_format: OutputFormat
    partition_size: Annotated[int, Field(ge=1, le=MAX_RECORDS)] | None = None
    priority: Annotated[int, Field(ge=0, le=9)] = 0


class ExportView(Reply):
    """The dataset file of a job."""

    key: str
    records: int
    bytes: int
    format: OutputFormat


class JobView(Reply):
    """A job and its progress."""

    id: str
    status: JobStatus
    template_id: str | None
    template_version: int | None
    seed_key: str
    num_records: int
    records_done: int
    partition_size: int | None
    priority: int
    cost_usd: str = Field(description="Settled spend in USD (exact decimal string).")
    budget_usd: str
    reserved_usd: str = Field(description="Budget currently leased to running partitions.")
    output_format: OutputFormat
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    export: ExportView | None
    partitions_total: int | None


# ------------------------------------------------------------------- health


class Health(Reply):
    """Answer of ``GET /health`` and ``GET /ready``."""

    status: str
    checks: dict[str, Any] = Field(default_factory=dict)


# ------------------------------------------------------------------ problems


class FieldProblem(Reply):
    """One invalid field of a problem (extra keys such as `line` or `record` may follow)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    field: str
    problem: str


class ProblemDetails(Reply):
    """An RFC 9457 problem (`application/problem+json`)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldProblem]
