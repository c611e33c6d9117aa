"""Bodies of ``/jobs``: creation, the job view, pages, the dashboard and downloads."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import Field

from palette.common.messages import MAX_RECORDS, JobStatus, OutputFormat
from palette.common.record_filters import Dedup, KeepIfExpression
from palette.common.samplers import SeedSampling
from palette.common.service_tiers import JobMode, ServiceTier
from palette.common.targets import MAX_GENERATED, Target
from palette.gateway.schemas.base import Cursor, Reply, Request, VersionNumber
from palette.gateway.schemas.dashboard import ShortOfTarget


class CreateJob(Request):
    """Body of ``POST /jobs``."""

    template_id: Annotated[str, Field(min_length=1, max_length=200)]
    template_version: VersionNumber | None = Field(None, description="Latest version when omitted.")
    seed_key: Annotated[str, Field(min_length=1, max_length=1024)]
    num_records: Annotated[int, Field(ge=1, le=MAX_RECORDS)]
    budget_usd: Annotated[Decimal, Field(gt=0, max_digits=18, decimal_places=12)] = Field(
        description="Hard cap on spend, in USD (a JSON number or a decimal string)."
    )
    output_format: OutputFormat
    partition_size: Annotated[int, Field(ge=1, le=MAX_RECORDS)] | None = Field(
        None,
        description="Records per partition of this job; null (the usual choice): the "
        "scheduler's `PALETTE_SCHEDULER_PARTITION_SIZE`.",
    )
    priority: Annotated[int, Field(ge=0, le=9)] = 0
    keep_if: KeepIfExpression | None = Field(
        None,
        description="Keep only records for which this expression is true: it reads "
        "`steps.<id>.output` and `vars.<name>` in the prompts' sandbox. The others are "
        "rejected: left out of the dataset and written, with the reason, to the rejected "
        "file (`GET /jobs/{id}/download?file=rejected`). Applied when the dataset is written.",
        examples=["steps.answer.output | length > 40"],
    )
    dedup: Dedup | None = Field(
        None,
        description='Reject duplicates of an earlier record (by index): `{"field": '
        '"steps.question.output", "mode": "exact"}` compares normalised text, `"near"` '
        "MinHash similarity of word shingles at least `threshold` (0.85 by default).",
        examples=[{"field": "steps.question.output", "mode": "near", "threshold": 0.85}],
    )
    seed_sampling: SeedSampling = Field(
        "uniform",
        description='Which seed record each record draws: `"uniform"` (at random, with '
        'replacement), `"shuffle"` (every seed record once per pass over the file, in an '
        'order of the job\'s own) or `{"stratify": "FIELD"}` (the field\'s values in turn, '
        "so each is drawn as often as the others). The same record always draws the same.",
        examples=["shuffle", {"stratify": "topic"}],
    )
    target: Target = Field(
        "generated",
        description='`"generated"`: make `num_records` records (what `keep_if` and `dedup` '
        'reject is left out of them). `"kept"`: keep generating new records until '
        "`num_records` records pass the template's and the job's `keep_if` and `dedup`, the "
        "budget runs out, or `max_generated` records were made; the dataset holds the first "
        "`num_records` records by index that pass (passing ones beyond them are rejected as "
        "`surplus`), so it does not depend on timing.",
        examples=["kept"],
    )
    max_generated: Annotated[int, Field(ge=1, le=MAX_GENERATED)] | None = Field(
        None,
        description='With `target: "kept"`: generate at most this many records (at least '
        "`num_records`; default 3 x `num_records`).",
        examples=[300],
    )
    mode: JobMode = Field(
        JobMode.ONLINE,
        description='How the job calls the model: `"online"` (one Converse call per record and '
        'step) or `"batch"` (Bedrock batch inference jobs, step by step, at about half the '
        "price; slower: each step waits for its batch).",
        examples=["online"],
    )
    service_tier: ServiceTier = Field(
        ServiceTier.DEFAULT,
        description='Bedrock service tier of the online calls: `"default"` (standard), '
        '`"flex"` (cheaper, slower when Bedrock is busy) or `"priority"` (dearer, served '
        "first). Calls are priced, and the budget reserved, at the tier's price; a model "
        "the pricing table has no price for at that tier is refused (422). Prompt caching "
        "(`cache_prompt` steps) is priced at the default tier only: a template with it is "
        "refused (422) at flex, priority and in batch. The preview's `estimate.by_rate` "
        "compares the choices.",
        examples=["flex"],
    )


class ExportView(Reply):
    """The dataset file of a job."""

    key: str
    records: int = Field(description="Rows in the file: complete and incomplete records.")
    incomplete: int = Field(
        0,
        description="Rows of records whose later steps never ran (the job stopped first): "
        "`complete` is false and the outputs of those steps are null.",
    )
    bytes: int
    format: OutputFormat
    rejected: int = Field(
        0, description="Complete records the job's keep_if or dedup left out of the file."
    )
    rejected_reasons: dict[str, int] = Field(
        default_factory=dict,
        description="Rejected records by reason: `keep_if`, `duplicate`, `invalid_output`, "
        "`surplus`.",
    )


class JobView(ShortOfTarget):
    """A job: configuration, status, progress, cost, timestamps and error."""

    id: str
    status: JobStatus
    template_id: str | None
    template_version: int | None
    seed_key: str
    num_records: int
    records_done: int = Field(description="Complete records made so far.")
    records_incomplete: int | None = Field(
        None,
        description="Records with some steps made and later ones never run (the job stopped "
        "first): paid for and in the export, flagged `complete: false`. Counted when the "
        "export is written (null before).",
    )
    progress_percent: float = Field(0.0, description="records_done / num_records, in percent.")
    partition_size: int | None = Field(
        description="Records per partition: the one asked for, else the scheduler's setting "
        "once the job has started (null until then)."
    )
    priority: int
    mode: JobMode = JobMode.ONLINE
    service_tier: ServiceTier = ServiceTier.DEFAULT
    cost_usd: str = Field(description="Spend settled so far in USD (exact decimal string).")
    budget_usd: str
    reserved_usd: str = Field(description="Budget currently leased to running partitions.")
    remaining_usd: str = Field("0", description="Budget neither spent nor reserved.")
    output_format: OutputFormat
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    export: ExportView | None
    partitions_total: int | None
    partitions_in_flight: int = Field(0, description="Partitions being generated right now.")
    partitions_paused: int = Field(
        0,
        description="Partitions waiting out a model that throttled every call for too long "
        "(its quota may be 0); each is dispatched again after a pause.",
    )
    paused_reason: str | None = Field(
        None, description="Why the latest of them paused (which model, for how long)."
    )
    seed_count: int | None = Field(None, description="Records in the seed file, once counted.")
    target: Target = Field("generated", description="What `num_records` counts (see `CreateJob`).")
    max_generated: int | None = Field(
        None, description='A `target: "kept"` job\'s cap on records generated.'
    )
    records_kept: int | None = Field(
        None,
        description="Complete records the filters kept, as last counted (each export counts "
        'them; a `target: "kept"` job counts after each wave): null before.',
    )
    settled: bool = Field(
        False,
        description="True once the job has ended and its export is written or failed: "
        "nothing about it changes any more, and `DELETE` deletes it (while a finished job's "
        "export is being written, `DELETE` answers 409).",
    )
    etag: str = Field(
        description="The job's ETag (also the `ETag` header of `GET /jobs/{id}`): it changes "
        "with the job's status and export. Send it as `If-Match` with `DELETE`."
    )


class CancelOutcome(StrEnum):
    """What ``POST /jobs/{id}/cancel`` did."""

    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    ALREADY_ENDED = "ALREADY_ENDED"


class CancelResult(Reply):
    """Answer of ``POST /jobs/{id}/cancel``: what the cancel did and the job as it is now."""

    outcome: CancelOutcome = Field(
        description="`CANCEL_REQUESTED`: the job was queued or running and stops shortly, "
        "exporting what it made (its status changes to CANCELLED once the scheduler has "
        "stopped it). `ALREADY_ENDED`: the job had ended; nothing changed."
    )
    detail: str = Field(description="The outcome in words.")
    job: JobView


class JobPage(Reply):
    """One page of ``GET /jobs``, newest first."""

    items: list[JobView]
    next_cursor: Cursor = None


class DownloadLink(Reply):
    """A presigned GET of a job's data."""

    url: str
    expires_at: datetime
    key: str
    format: OutputFormat
    partial: bool = Field(description="True for a snapshot of a job that is still running.")
    bytes: int
    records: int | None = Field(None, description="Records in the file, when known.")
