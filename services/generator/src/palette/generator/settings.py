"""Settings of the generator, from ``PALETTE_GENERATOR_*`` environment variables."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from palette.common.record_filters import MAX_NEAR_SIGNATURES
from palette.common.settings import CommonSettings

MIB = 1024 * 1024


class GeneratorSettings(CommonSettings):
    """Generator settings; every field has a default that works on one machine."""

    model_config = SettingsConfigDict(env_prefix="PALETTE_GENERATOR_")

    concurrency: int = Field(
        32, ge=1, le=1024, description="Process-wide bound on concurrent model calls."
    )
    prefetch: int = Field(
        2, ge=1, le=64, description="Partitions (and exports) a generator takes at once."
    )
    model_call_timeout: float = Field(
        60.0, gt=0, description="Seconds to wait for one model call's response."
    )
    max_call_attempts: int = Field(
        4,
        ge=1,
        le=20,
        description="Attempts of a model call on 5xx or timeout (a throttled attempt is "
        "waited out and not counted).",
    )
    backoff_base: float = Field(
        0.25, ge=0, description="First retry delay in seconds (doubles per attempt, jittered)."
    )
    backoff_max: float = Field(8.0, ge=0, description="Largest retry delay in seconds.")
    render_seconds: float = Field(
        1.0, gt=0, description="Wall-clock limit of rendering one prompt."
    )
    part_size: int = Field(
        100,
        ge=1,
        description="Most records per part object (a shorter part is written when a "
        "finished record has waited PALETTE_GENERATOR_PART_FLUSH_SECONDS).",
    )
    render_loop_seconds: float = Field(
        0.005,
        ge=0,
        description="A render that takes more CPU time than this on the event loop is cut "
        "short and made again in a render process, and its template renders there until it "
        "is fast again (0: every render in a render process).",
    )
    render_processes: int = Field(
        2, ge=1, le=64, description="Render processes for slow templates (started on first use)."
    )
    part_flush_seconds: float = Field(
        2.0,
        gt=0,
        description="Longest a finished record waits before it is written in a part (parts "
        "also close at PALETTE_GENERATOR_PART_SIZE records): what a killed generator can "
        "lose of records already paid for.",
    )
    status_poll_seconds: float = Field(
        5.0,
        ge=0,
        description="How often a running partition re-reads its job's status (0 = never); "
        "the JobStopped broadcast is the fast path, this covers a missed broadcast.",
    )
    claim_ttl_seconds: float = Field(
        10.0,
        gt=0,
        description="A partition's lease is held exclusively by one generator; the claim is "
        "renewed every third of this and taken over by another one after it lapses.",
    )
    max_output_attempts: int = Field(
        3,
        ge=1,
        le=10,
        description="Calls of a structured step (output_schema, judge) until its answer "
        "matches the schema; every one is reserved, billed and accounted.",
    )
    claim_retention_seconds: float = Field(
        86_400.0,
        ge=0,
        description="How long a finished partition's claim is kept (a TTL index drops it "
        "after); a redelivery that comes later meets the closed lease instead.",
    )
    export_batch_rows: int = Field(
        1_000, ge=1, description="Rows buffered before a Parquet row group is written."
    )
    dedup_near_max_signatures: int = Field(
        MAX_NEAR_SIGNATURES,
        ge=1,
        description="Signatures a near-dedup export keeps (about 3.5 KB each): those of the "
        "first kept records by index; later records are compared with them only.",
    )
    export_part_bytes: int = Field(
        8 * MIB, ge=5 * MIB, description="Bytes of one multipart upload part of an export."
    )
    quotas_file: str | None = Field(
        None,
        validation_alias=AliasChoices("PALETTE_QUOTAS_FILE", "quotas_file"),
        description="A quota table (JSON, the shape of the shipped quotas.json) that replaces "
        "the shipped one: tokens and requests per minute and output burndown per Region and "
        "model id, which the generators pace their calls to.",
    )
    quota_table: bool = Field(
        True,
        description="Pace the calls of a model the quota table lists to its quota, shared "
        "among the generators; false: every model is paced by throttles alone, as a model "
        "the table does not list (the dev stack sets it so while its emulator enforces no "
        "quota).",
    )
    quota_target: float = Field(
        0.98,
        gt=0,
        le=1,
        description="Fraction of a model's quota the generators together aim to use.",
    )
    quota_sync_seconds: float = Field(
        1.0,
        gt=0,
        description="How often a generator with calls for a model renews its document in "
        "`quota_shares` and recomputes its share of the model's quota.",
    )
    model_unavailable_seconds: float = Field(
        300.0,
        gt=0,
        description="A model that throttles every call for this long without one answer "
        "pauses the partitions waiting on it (the scheduler dispatches them again after "
        "PALETTE_SCHEDULER_PAUSE_SECONDS); a shorter throttle is waited out.",
    )
    batch_min_records: int = Field(
        100,
        ge=1,
        description="Fewest records of a Bedrock batch inference job (Bedrock's quota): a "
        "batch-mode step with fewer records left calls the model online for them.",
    )
    batch_max_records: int = Field(
        50_000,
        ge=1,
        description="Most records of one batch inference job (Bedrock's quota): a larger "
        "step is split into several jobs.",
    )
    batch_poll_seconds: float = Field(
        10.0, gt=0, description="How often a running batch inference job's status is read."
    )
    batch_max_rounds: int = Field(
        5,
        ge=1,
        description="Batch jobs (or online rounds) a step's failed entries are retried in "
        "before the partition fails (retryable).",
    )
    batch_role_arn: str = Field(
        "arn:aws:iam::000000000000:role/palette-batch",
        description="IAM role Bedrock's batch inference jobs read and write S3 with.",
    )
