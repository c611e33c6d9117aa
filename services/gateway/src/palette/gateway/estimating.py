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
from palette.gateway.schemas import JobEstimateView


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
