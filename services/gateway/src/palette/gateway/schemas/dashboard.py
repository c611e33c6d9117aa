"""Bodies of ``GET /jobs/{id}/dashboard``: the job's progress, cost, tokens, timing, quotas."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from palette.common.messages import JobStatus
from palette.gateway.schemas.base import Reply


class ShortOfTarget(Reply):
    """Whether a ``target: "kept"`` job ended short of its target (job view and dashboard)."""

    short_of_target: bool = Field(
        False,
        description='True when a `target: "kept"` job ended, its dataset written, with fewer '
        "kept records than `num_records` (`max_generated` reached, the budget ran out, or it "
        "was cancelled): its status alone (`COMPLETED` when `max_generated` stopped it) does "
        "not say so.",
    )
    short_of_target_reason: str | None = Field(
        None,
        description='Why, when `short_of_target`: e.g. "short of target: kept 5 of 8 records; '
        'max_generated (24) allowed no more than the 24 records generated".',
    )


class ProgressPanel(ShortOfTarget):
    """How far the job is."""

    done: int = Field(description="Complete records made so far.")
    incomplete: int | None = Field(
        None,
        description="Records whose later steps never ran, in the export with `complete` "
        "false; counted when the export is written (null before).",
    )
    target: int
    percent: float
    records_per_second: float | None = Field(
        description="Recent rate (last minute of observations), else the average since start."
    )
    partitions_total: int | None
    partitions_in_flight: int
    partitions_paused: int = Field(
        0,
        description="Partitions waiting out a model that throttled every call for too long "
        "(its quota may be 0); each is dispatched again after a pause.",
    )
    paused_reason: str | None = Field(
        None, description="Why the latest of them paused (which model, for how long)."
    )
    generated: int = Field(0, description="Records generated (complete), kept or not.")
    kept: int | None = Field(
        None, description="Of them, those the filters kept, as last counted (null before)."
    )
    rejected: dict[str, int] = Field(
        default_factory=dict,
        description="Records rejected, by reason (`keep_if`, `duplicate`, `invalid_output`, "
        "`surplus`), as last counted.",
    )


class CostLine(Reply):
    """Cost and usage of one model or one step."""

    name: str = Field(description="The model id, or the step id.")
    model: str | None
    cost_usd: str
    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = Field(0, description="Input tokens read from the prompt cache.")
    cache_write_tokens: int = Field(0, description="Input tokens written to the prompt cache.")


class BudgetPanel(Reply):
    """The job's money."""

    limit_usd: str
    spent_usd: str
    reserved_usd: str
    remaining_usd: str
    percent_spent: float
    exceeded: bool


class TokensPanel(Reply):
    """Token totals, and the model-call attempts that brought no answer."""

    input: int
    output: int
    cache_read: int = Field(
        0, description="Input tokens read from the prompt cache (steps with `cache_prompt`)."
    )
    cache_write: int = Field(0, description="Input tokens written to the prompt cache.")
    calls: int
    throttled: int = Field(
        0, description="Call attempts the provider refused for its quota (never billed)."
    )
    retried: int = Field(
        0, description="Call attempts made again after a throttle, a 5xx or a timeout."
    )
    quota_wait_seconds: float = Field(
        0.0,
        description="Seconds the job's calls waited for their model's quota before they were "
        "sent, summed over calls (a throttled call waits, it does not fail).",
    )


class QuotaLine(Reply):
    """How the generators share one model's quota now (over every job on the model)."""

    model: str
    quota_tpm: int | None = Field(
        description="The model's tokens per minute from the quota table (null: not listed, "
        "the rate is found from throttles)."
    )
    generators: int = Field(description="Generator processes calling the model now.")
    share_tpm: int | None = Field(
        description="Their shares of the quota, summed (null for an unlisted model)."
    )
    rate_tpm: int | None = Field(
        description="Tokens per minute they let the model's calls use now: shares times the "
        "throttle factor, summed (null: some are unlimited, nothing throttled them)."
    )
    used_tpm: int = Field(description="Quota tokens per minute the model's answered calls used.")
    waiting: int = Field(description="Calls waiting for the quota now.")


class TimingPanel(Reply):
    """When things happened and when the job should end."""

    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    elapsed_seconds: float | None
    eta_seconds: float | None = Field(description="Remaining records at the recent rate.")
    eta_at: datetime | None


class Dashboard(Reply):
    """Answer of ``GET /jobs/{id}/dashboard``."""

    job_id: str
    status: JobStatus
    progress: ProgressPanel
    cost_by_model: list[CostLine]
    cost_by_step: list[CostLine]
    budget: BudgetPanel
    tokens: TokensPanel
    timing: TimingPanel
    quotas: list[QuotaLine] = Field(
        default_factory=list,
        description="The quota of each model of the job's template, as the generators share "
        "it now (a model no generator calls now is absent).",
    )
