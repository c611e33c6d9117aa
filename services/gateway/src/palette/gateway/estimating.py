"""A preview's estimate of a whole job: pure arithmetic on integer picodollars.

From the records a preview ran to their end: the mean cost times the job's
records (rounded up to a picodollar, so it never understates), and the spread
as the cheapest and the dearest record times the job's records (exact, where a
standard deviation would not be a finite decimal). The worst case is the
largest one-record worst case of the seeds previewed times the job's records.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from palette.common.money import usd_string
from palette.common.pricing import PricingTable
from palette.common.service_tiers import rate_names, rated_table
from palette.gateway.schemas import JobEstimateView, RateEstimateView

RateCosts = dict[str, int | None]
"""A record's cost at each rate (``service_tiers.rate_names``); None: a model has no price."""


@dataclass(frozen=True, slots=True)
class SampleRun:
    """The records a preview ran: each complete record's cost, what all cost, and the rest."""

    costs: tuple[int, ...] = ()
    spent: int = 0
    errors: tuple[str, ...] = ()

    def add(self, name: str, cost: int, error: str | None) -> SampleRun:
        """One more record run: complete (no error) or stopped early, with why."""
        if error is None:
            return replace(self, costs=(*self.costs, cost), spent=self.spent + cost)
        return replace(self, spent=self.spent + cost, errors=(*self.errors, f"{name}: {error}"))


def rate_costs(calls: Sequence[tuple[str, int, int]], pricing: PricingTable) -> RateCosts:
    """The cost at every rate of a record's calls, each ``(model, input_tokens, output_tokens)``.

    With a step's input bound and ``max_tokens`` as its tokens this is the
    record's worst case at each rate (``estimates.call_worst_case``).
    """
    costs: RateCosts = {}
    for rate in rate_names():
        table = rated_table(pricing, rate)
        priced = all(model in table for model, _, _ in calls)
        costs[rate] = sum(table.cost(*call) for call in calls) if priced else None
    return costs


def by_rate(
    num_records: int, worst: Sequence[RateCosts], run: Sequence[RateCosts] = ()
) -> dict[str, RateEstimateView | None]:
    """Worst case and mean of the job at every rate, from each seed's and each run's costs."""
    views: dict[str, RateEstimateView | None] = {}
    for rate in rate_names():
        worsts = [costs[rate] for costs in worst]
        runs = [costs[rate] for costs in run]
        if any(cost is None for cost in [*worsts, *runs]):
            views[rate] = None
            continue
        ran = [int(cost or 0) for cost in runs]
        views[rate] = RateEstimateView(
            worst_case_usd=usd_string(max(int(cost or 0) for cost in worsts) * num_records),
            mean_usd=usd_string(-(-sum(ran) * num_records // len(ran))) if ran else None,
        )
    return views


def rated_estimate(
    num_records: int,
    worst_cases: Sequence[int],
    worst_rates: Sequence[RateCosts],
    run: SampleRun | None = None,
    ran: Sequence[RateCosts] = (),
) -> JobEstimateView:
    """``job_estimate`` with ``by_rate``: the same job at every tier and in batch."""
    estimate = job_estimate(num_records, worst_cases, run)
    return estimate.model_copy(update={"by_rate": by_rate(num_records, worst_rates, ran)})


def job_estimate(
    num_records: int, worst_cases: Sequence[int], run: SampleRun | None = None
) -> JobEstimateView:
    """The estimate for ``num_records`` records.

    Args:
        num_records: records of the job.
        worst_cases: the one-record worst case of each seed previewed (at least one).
        run: the records run through the model; None (or no complete record)
            leaves the mean and the spread null.

    Raises:
        ValueError: no worst case, or fewer than one record.
    """
    if not worst_cases or num_records < 1:
        raise ValueError("an estimate needs at least one seed's worst case and one record")
    run = run or SampleRun()
    costs = list(run.costs)
    mean = low = high = None
    if costs:
        mean = usd_string(-(-sum(costs) * num_records // len(costs)))
        low = usd_string(min(costs) * num_records)
        high = usd_string(max(costs) * num_records)
    return JobEstimateView(
        num_records=num_records,
        records_run=len(costs),
        mean_usd=mean,
        low_usd=low,
        high_usd=high,
        worst_case_usd=usd_string(max(worst_cases) * num_records),
        spent_usd=usd_string(run.spent),
        errors=list(run.errors),
    )
