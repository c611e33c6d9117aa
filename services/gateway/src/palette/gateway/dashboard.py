"""The dashboard of a job: progress, cost by model and step, budget, tokens and timing (pure)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from palette.common.job_document import paused_partitions
from palette.common.ledger_view import LedgerView, Totals
from palette.common.messages import JobStatus
from palette.common.money import usd_string
from palette.common.quota_view import QuotaUse
from palette.gateway.job_views import (
    in_flight,
    kept_counts,
    percent,
    records_incomplete,
    short_of_target,
)
from palette.gateway.rates import average_rate
from palette.gateway.schemas import (
    BudgetPanel,
    CostLine,
    Dashboard,
    ProgressPanel,
    QuotaLine,
    TimingPanel,
    TokensPanel,
)


def step_models(job: dict[str, Any]) -> dict[str, str]:
    """Step id to model id, from the job's template snapshot."""
    steps = (job.get("template") or {}).get("steps") or []
    return {str(step["id"]): str(step["model"]) for step in steps}


def cost_lines(
    totals: dict[str, Totals], *, by_model: bool, models: dict[str, str] | None = None
) -> list[CostLine]:
    """One line per model or step, most expensive first."""
    lines = [
        CostLine(
            name=name,
            model=name if by_model else (entry.model_id or (models or {}).get(name)),
            cost_usd=usd_string(entry.cost),
            calls=entry.calls,
            input_tokens=entry.input_tokens,
            output_tokens=entry.output_tokens,
            cache_read_tokens=entry.cache_read_tokens,
            cache_write_tokens=entry.cache_write_tokens,
        )
        for name, entry in totals.items()
    ]
    costs = {name: entry.cost for name, entry in totals.items()}
    return sorted(lines, key=lambda line: (-costs[line.name], line.name))


def progress_panel(
    job: dict[str, Any], done: int, target: int, rate: float | None
) -> ProgressPanel:
    """How far the job is, and its partitions in flight and paused."""
    paused, paused_reason = paused_partitions(job)
    kept, rejected = kept_counts(job)
    short = short_of_target(job)
    return ProgressPanel(
        done=done,
        incomplete=records_incomplete(job),
        target=target,
        percent=percent(done, target),
        records_per_second=round(rate, 3) if rate is not None else None,
        partitions_total=job.get("partitions_total"),
        partitions_in_flight=in_flight(job),
        partitions_paused=paused,
        paused_reason=paused_reason,
        generated=done,
        kept=kept,
        rejected=rejected,
        short_of_target=short is not None,
        short_of_target_reason=short,
    )


def tokens_panel(ledger: LedgerView) -> TokensPanel:
    """The job's tokens (cache reads and writes apart) and its calls."""
    return TokensPanel(
        input=ledger.input_tokens,
        output=ledger.output_tokens,
        cache_read=ledger.cache_read_tokens,
        cache_write=ledger.cache_write_tokens,
        calls=ledger.calls,
        throttled=ledger.throttled_calls,
        retried=ledger.retried_calls,
        quota_wait_seconds=round(ledger.quota_wait_ms / 1000, 3),
    )


def build_dashboard(
    job: dict[str, Any],
    ledger: LedgerView,
    recent_rate: float | None,
    now: datetime,
    quotas: list[QuotaUse] | None = None,
) -> Dashboard:
    """Everything the dashboard shows, from the job document, its live ledger and quotas.

    ``recent_rate`` (records per second) comes from recent observations; without
    it the average since the start is used. The ETA is only given while running.
    ``quotas``: how the generators share the quotas of the job's models now.
    """
    status = JobStatus(job["status"])
    done, target = int(job.get("records_done") or 0), int(job["num_records"])
    started: datetime | None = job.get("started_at")
    finished: datetime | None = job.get("finished_at")
    rate = recent_rate if recent_rate is not None else average_rate(done, started, finished or now)
    eta_seconds: float | None = None
    eta_at: datetime | None = None
    if status is JobStatus.RUNNING and rate and rate > 0:
        eta_seconds = round(max(target - done, 0) / rate, 1)
        eta_at = now + timedelta(seconds=eta_seconds)
    elif status.is_final:
        eta_seconds = 0.0
    remaining = max(ledger.budget - ledger.spent - ledger.reserved, 0)
    elapsed = ((finished or now) - started).total_seconds() if started else None
    return Dashboard(
        job_id=str(job["_id"]),
        status=status,
        progress=progress_panel(job, done, target, rate),
        cost_by_model=cost_lines(ledger.by_model, by_model=True),
        cost_by_step=cost_lines(ledger.by_step, by_model=False, models=step_models(job)),
        budget=BudgetPanel(
            limit_usd=usd_string(ledger.budget),
            spent_usd=usd_string(ledger.spent),
            reserved_usd=usd_string(ledger.reserved),
            remaining_usd=usd_string(remaining),
            percent_spent=percent(ledger.spent, ledger.budget),
            exceeded=ledger.exceeded,
        ),
        tokens=tokens_panel(ledger),
        timing=TimingPanel(
            created_at=job["created_at"],
            started_at=started,
            finished_at=finished,
            elapsed_seconds=round(elapsed, 3) if elapsed is not None else None,
            eta_seconds=eta_seconds,
            eta_at=eta_at,
        ),
        quotas=[QuotaLine(**asdict(use)) for use in quotas or []],
    )
