"""Message contracts: one frozen pydantic model per command or event.

Every message carries the envelope fields ``message_id`` (the idempotency key:
a consumer applies a given id at most once), ``occurred_at`` and ``version``.
Commands are imperative, events are in the past tense. Amounts of money are
integer picodollars (see ``palette.common.money``); token counts are integers.

Long because every contract is in this one module on purpose: a reader (or a
service) finds the whole protocol in one file, in sections (commands, events,
gateway requests, preview spend, webhooks), and the internals map is read from
it. Split into a package, the models would still be re-exported from here and
the protocol would be scattered over files that each mean little alone.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from palette.common.record_filters import Dedup, KeepIfExpression
from palette.common.samplers import SeedSampling
from palette.common.service_tiers import JobMode, Rate, ServiceTier
from palette.common.targets import MAX_GENERATED, Target, target_problem
from palette.common.templates import TemplateSpec

NonNegInt = Annotated[int, Field(ge=0)]
PosInt = Annotated[int, Field(ge=1)]
Identifier = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@-]+$")]

MAX_RECORDS = 1_000_000


def new_message_id() -> str:
    """A fresh random message id."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    """Timezone-aware current time in UTC."""
    return datetime.now(UTC)


class OutputFormat(StrEnum):
    """Export formats of a dataset."""

    JSONL = "jsonl"
    PARQUET = "parquet"
    CSV = "csv"


class JobStatus(StrEnum):
    """Lifecycle of a job; only the scheduler moves it, by conditional updates."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    BUDGET_EXCEEDED = "BUDGET_EXCEEDED"

    @property
    def is_final(self) -> bool:
        """Whether the job has ended (it may still be exporting)."""
        return self not in (JobStatus.QUEUED, JobStatus.RUNNING)


class Message(BaseModel):
    """The envelope every message shares."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    message_id: str = Field(default_factory=new_message_id, min_length=1, max_length=200)
    occurred_at: datetime = Field(default_factory=utcnow)
    version: Literal[1] = 1


class StepUsage(BaseModel):
    """Token usage of one template step's model calls."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    step_id: Identifier
    model_id: str = Field(min_length=1)
    calls: NonNegInt = 0
    input_tokens: NonNegInt = 0
    output_tokens: NonNegInt = 0
    cache_read_tokens: NonNegInt = 0
    """Input tokens read from the prompt cache (not in ``input_tokens``)."""
    cache_write_tokens: NonNegInt = 0
    """Input tokens written to the prompt cache (not in ``input_tokens``)."""
    service_tier: Rate = ServiceTier.DEFAULT
    """The tier the calls were served at, or ``batch``: their tokens are priced at its price."""


class RetryCounts(BaseModel):
    """Model-call attempts that brought no answer and were made again (never billed as calls).

    ``throttled``: attempts the provider refused for its quota (``ThrottlingException``
    and the like). ``retried``: attempts made again after a retryable failure (a
    throttle, a 5xx, a timeout). A throttled attempt that was retried counts in both.
    ``waited_ms``: milliseconds calls waited for their model's quota before they were sent.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    throttled: NonNegInt = 0
    retried: NonNegInt = 0
    waited_ms: NonNegInt = 0


# ----------------------------------------------------------------- commands


class SubmitJob(Message):
    """Create (if new) and run a job. Idempotent on ``job_id``."""

    job_id: Identifier
    owner: Identifier
    template: TemplateSpec
    template_id: str | None = None
    template_version: int | None = None
    seed_key: str = Field(min_length=1, max_length=1024)
    num_records: int = Field(ge=1, le=MAX_RECORDS)
    budget_usd: Decimal = Field(gt=0, max_digits=18, decimal_places=12)
    output_format: OutputFormat = OutputFormat.JSONL
    partition_size: PosInt | None = Field(
        None,
        description="Records per partition; null: PALETTE_SCHEDULER_PARTITION_SIZE.",
    )
    priority: int = Field(default=0, ge=0, le=9)
    keep_if: KeepIfExpression | None = None
    dedup: Dedup | None = Field(
        None, description="Duplicates of an earlier record (by index) are rejected."
    )
    seed_sampling: SeedSampling = Field(
        default="uniform",
        description='Which seed record each record draws: "uniform" (with replacement), '
        '"shuffle" (every seed once per epoch) or {"stratify": FIELD} (balanced across the '
        "field's values).",
    )
    mode: JobMode = Field(
        default=JobMode.ONLINE,
        description='"online": one Converse call per record and step; "batch": Bedrock batch '
        "inference jobs at the batch price, step by step.",
    )
    service_tier: ServiceTier = Field(
        default=ServiceTier.DEFAULT,
        description='Bedrock service tier of online calls: "default", "flex" (cheaper, slower) '
        'or "priority" (dearer, served first); calls are priced at its price.',
    )
    target: Target = Field(
        default="generated",
        description='"generated": make num_records records; "kept": generate until '
        "num_records records pass keep_if and dedup, the budget runs out or max_generated "
        "records were made (palette.common.targets).",
    )
    max_generated: PosInt | None = Field(
        None,
        le=MAX_GENERATED,
        description='With target "kept": at most this many records generated (default 3 x '
        "num_records; at least num_records).",
    )

    @model_validator(mode="after")
    def _target(self) -> SubmitJob:
        problem = target_problem(self.target, self.num_records, self.max_generated)
        if problem is not None:
            raise ValueError(problem)
        return self


class CancelJob(Message):
    """Stop a queued or running job; it exports what it made."""

    job_id: Identifier
    reason: str = Field(default="cancelled by user", max_length=500)


class ReserveBudget(Message):
    """Ask accounting for a lease of at least ``minimum`` and at most ``amount``."""

    job_id: Identifier
    partition: NonNegInt
    lease_id: Identifier
    amount: PosInt
    minimum: PosInt


class GeneratePartition(Message):
    """Generate records ``[start, end)`` of a job within the lease."""

    job_id: Identifier
    partition: NonNegInt
    attempt: PosInt
    start: NonNegInt
    end: PosInt
    lease_id: Identifier
    lease_amount: PosInt
    template: TemplateSpec
    seed_key: str
    seed_count: PosInt
    seed_sampling: SeedSampling = "uniform"
    service_tier: ServiceTier = ServiceTier.DEFAULT
    """The ``serviceTier`` of every call; the lease guard prices calls at its price."""
    mode: JobMode = JobMode.ONLINE
    """``batch``: the records go through Bedrock batch inference jobs, priced at the batch price."""
    part_size: PosInt | None = Field(
        None,
        description="Not read any more: generators use their own PALETTE_GENERATOR_PART_SIZE. "
        "Accepted so that a command published by an older scheduler is still worked.",
    )


class ExportJob(Message):
    """Assemble a job's parts into its dataset file."""

    job_id: Identifier
    output_format: OutputFormat
    expected_records: NonNegInt


# ------------------------------------------------------------------- events


class BudgetReserved(Message):
    """A lease was drawn from the job's remaining budget."""

    job_id: Identifier
    partition: NonNegInt
    lease_id: Identifier
    amount: PosInt


class BudgetDenied(Message):
    """No lease of the minimum size fits in what is left of the budget."""

    job_id: Identifier
    partition: NonNegInt
    lease_id: Identifier
    minimum: PosInt
    available: int


class RecordsGenerated(Message):
    """A part of records was written to S3; the usage it cost settles the ledger.

    ``message_id`` is derived from the part write, so a re-announced part is
    applied once.
    """

    job_id: Identifier
    partition: NonNegInt
    lease_id: Identifier
    part_key: str
    records: NonNegInt
    usage: tuple[StepUsage, ...] = ()
    retries: RetryCounts = RetryCounts()
    """Attempts throttled and retried since the attempt's previous part."""


class PartitionOutcome(StrEnum):
    """Why a partition attempt ended without failing."""

    DONE = "done"
    LEASE_EXHAUSTED = "lease_exhausted"
    JOB_STOPPED = "job_stopped"
    MODEL_UNAVAILABLE = "model_unavailable"
    """A model throttled every call for too long (its quota may be 0): the partition pauses."""


class PartitionCompleted(Message):
    """An attempt ended; ``usage`` is the whole attempt's usage under its lease.

    ``usage`` holds the calls whose answer came. ``unknown_calls`` are the
    ``call_id``s (from each call's ``requestMetadata``) of calls whose answer
    never came (a read timeout, a dropped connection, a model timeout after the
    model ran): the provider may or may not have billed them, so accounting
    holds their summed worst case, ``unknown_worst`` (picodollars), until the
    provider's invocation log tells what they cost.
    """

    job_id: Identifier
    partition: NonNegInt
    attempt: PosInt
    lease_id: Identifier
    outcome: PartitionOutcome
    records_done: NonNegInt
    records_missing: NonNegInt
    needed: NonNegInt = 0
    usage: tuple[StepUsage, ...] = ()
    unknown_calls: tuple[Identifier, ...] = ()
    unknown_worst: NonNegInt = 0
    retries: RetryCounts = RetryCounts()
    """The whole attempt's throttled and retried attempts (re-announced parts too)."""
    reason: str = Field("", max_length=2000)
    """Why the attempt ended early (``model_unavailable``: which model, for how long)."""


class PartitionFailed(Message):
    """An attempt failed; ``usage`` is what it spent under its lease.

    ``unknown_calls`` and ``unknown_worst`` are as in ``PartitionCompleted``.
    ``lost_holder`` is set when the generator took the lease over from a
    holder that is gone (its claim lapsed before the attempt ended, e.g. a
    killed process): nobody knows what that holder spent, so this attempt made
    no call, accounting settles the lease from the provider's invocation log
    (every call tagged with the lease), and the scheduler retries the
    partition under a new lease without counting the failure toward
    ``max_attempts``. ``usage`` is then what the parts written under the lease
    reported.
    """

    job_id: Identifier
    partition: NonNegInt
    attempt: PosInt
    lease_id: Identifier
    error: str = Field(max_length=2000)
    retryable: bool = True
    usage: tuple[StepUsage, ...] = ()
    unknown_calls: tuple[Identifier, ...] = ()
    unknown_worst: NonNegInt = 0
    retries: RetryCounts = RetryCounts()
    """The whole attempt's throttled and retried attempts (re-announced parts too)."""
    lost_holder: Identifier | None = None


class LeaseClosed(Message):
    """A lease is settled: what it spent is in the ledger and the rest returned."""

    job_id: Identifier
    partition: NonNegInt
    lease_id: Identifier
    spent: NonNegInt
    returned: int


class BudgetExceeded(Message):
    """Accounting can grant no more money to the job."""

    job_id: Identifier
    budget: int
    spent: int


class JobStopped(Message):
    """Broadcast: generators stop calling the model for this job at once."""

    job_id: Identifier
    status: JobStatus


class ExportCompleted(Message):
    """The dataset file of a job is written."""

    job_id: Identifier
    output_format: OutputFormat
    key: str
    records: NonNegInt = Field(description="Rows of the file, complete and incomplete records.")
    bytes: NonNegInt
    incomplete: NonNegInt = Field(
        0, description="Rows of records whose later steps never ran (`complete` false)."
    )
    rejected: NonNegInt = Field(
        0, description="Complete records the job's keep_if or dedup left out of the file."
    )
    rejected_reasons: dict[str, NonNegInt] = Field(
        default_factory=dict, description="Rejected records by reason: keep_if, duplicate."
    )
    rejected_key: str | None = Field(
        None, description="The JSONL file of rejected records with their reasons (null: none)."
    )


class ExportFailed(Message):
    """The export could not be written."""

    job_id: Identifier
    error: str = Field(max_length=2000)


class JobStatusChanged(Message):
    """A job moved to a new status."""

    job_id: Identifier
    owner: str
    status: JobStatus
    previous: JobStatus | None = None
    reason: str | None = None


# ------------------------------------------------- gateway requests


class DeleteJob(Message):
    """Delete a finished job with its records, export and ledger (scheduler coordinates).

    The scheduler checks that the job is ``owner``'s and has ended, deletes its
    own documents and announces ``JobDeleted`` so every owner of job data purges it.
    """

    job_id: Identifier
    owner: Identifier


class JobDeleted(Message):
    """A finished job is deleted: accounting purges its ledger, the generator its S3 objects."""

    job_id: Identifier


class ExportSnapshot(Message):
    """Write what a job has made so far to ``keys.snapshot_key(job_id, tag, output_format)``.

    A partial export of a running job (``tag`` is the zero-padded records done
    at request time) or a finished job's data in another format (``tag`` is
    ``final``). Idempotent: an existing snapshot object is kept.
    """

    job_id: Identifier
    output_format: OutputFormat
    tag: Annotated[str, Field(pattern=r"^(final|[0-9]{10})$")]


class PreviewRecord(Message):
    """Run one record of a template through the model (request/reply, never retried).

    ``max_cost`` (picodollars) caps the record's summed worst cases: a call
    whose worst case does not fit is not made. A request read after
    ``deadline`` is dropped (its caller has stopped waiting).
    """

    owner: Identifier
    template: TemplateSpec
    seed: dict[str, Any]
    max_cost: PosInt
    deadline: datetime
    variables: dict[str, Any] = Field(
        default_factory=dict, description="The record's draws of the template's variables."
    )


class StepPreview(BaseModel):
    """One step of a previewed record: what was sent, what came back and what it cost."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    step_id: Identifier
    model_id: str
    prompt: str
    system: str | None = None
    output: str
    input_tokens: NonNegInt
    output_tokens: NonNegInt
    cost: NonNegInt
    cache_read_tokens: NonNegInt = 0
    cache_write_tokens: NonNegInt = 0


class PreviewResult(Message):
    """The reply to ``PreviewRecord``: every step that ran and the exact cost, or the error."""

    steps: tuple[StepPreview, ...] = ()
    cost: NonNegInt = 0
    error: str | None = Field(default=None, max_length=2000)


# ------------------------------------------------- preview spend


class ReservePreviewBudget(Message):
    """Reserve a preview's worst case from its owner's preview budget of the day (request/reply).

    The gateway asks accounting before it publishes the ``PreviewRecord`` whose
    ``message_id`` is ``preview_id``; accounting answers ``PreviewBudgetResult``.
    ``amount`` (picodollars) is reserved only if what the owner spent and holds
    reserved on the UTC day, plus ``amount``, stays within ``limit``, in one
    atomic update. Idempotent on ``preview_id``. A request read after
    ``deadline`` reserves nothing; a reservation no ``PreviewCompleted`` settles
    is released some time after ``deadline`` (accounting's
    ``preview_hold_seconds``).
    """

    preview_id: str = Field(min_length=1, max_length=200)
    owner: Identifier
    template_id: str | None = Field(default=None, max_length=200)
    amount: PosInt
    limit: PosInt
    deadline: datetime


class PreviewBudgetResult(Message):
    """The reply to ``ReservePreviewBudget``: granted or not, and the day's budget after it.

    ``spent`` and ``reserved`` are the owner's settled and reserved preview spend
    of ``day``; ``available`` is what is left of ``limit`` (never negative).
    """

    preview_id: str = Field(min_length=1, max_length=200)
    granted: bool
    day: date
    limit: NonNegInt
    spent: NonNegInt
    reserved: NonNegInt
    available: NonNegInt
    reason: str | None = Field(default=None, max_length=500)


class PreviewCompleted(Message):
    """What a preview spent: every ``PreviewRecord`` a generator reads ends with one.

    ``usage`` holds the calls whose answer came; ``unknown_worst`` (picodollars)
    the worst case of calls whose outcome is unknown (the provider may have
    billed them), or, for a request delivered again, the whole ``max_cost`` an
    earlier delivery may have spent. Accounting prices the usage and settles
    the preview's reservation once (``message_id`` is derived from
    ``preview_id``, see ``preview_completed_id``); a preview with no
    reservation (published by another system) is charged all the same.
    """

    preview_id: str = Field(min_length=1, max_length=200)
    owner: Identifier
    usage: tuple[StepUsage, ...] = ()
    unknown_worst: NonNegInt = 0


def preview_completed_id(preview_id: str) -> str:
    """The ``message_id`` of a preview's ``PreviewCompleted`` (the same for every delivery)."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"palette:preview-completed:{preview_id}").hex


# ------------------------------------------------------------- webhooks

WEBHOOK_ID_PATTERN = r"^wh_[0-9a-f]{32}$"
EVENT_ID_PATTERN = r"^msg_[0-9a-f]{32}$"
WebhookId = Annotated[str, Field(pattern=WEBHOOK_ID_PATTERN)]
EventId = Annotated[str, Field(pattern=EVENT_ID_PATTERN)]


class BudgetThresholdReached(Message):
    """A job's settled spend reached ``threshold`` percent of its budget (75 or 90).

    Accounting announces each threshold of a job once (a marker in its ledger);
    ``message_id`` is derived from the job and the threshold, so an announcement
    repeated after a crash is the same event.
    """

    job_id: Identifier
    threshold: Literal[75, 90]
    budget: NonNegInt
    spent: NonNegInt


class SendTestWebhook(Message):
    """Send a test event (``webhook.test``) to one of ``owner``'s webhooks now.

    ``event_id`` is the delivery's ``webhook-id``, chosen by the caller (the
    gateway answers it at once); idempotent on it.
    """

    webhook_id: WebhookId
    owner: Identifier
    event_id: EventId


class ResendWebhookDelivery(Message):
    """Deliver an event to a webhook again, as a new series of attempts, same ``webhook-id``."""

    webhook_id: WebhookId
    owner: Identifier
    event_id: EventId
