"""The preview's job estimate: mean, spread and worst case scaled to a job (pure arithmetic)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from palette.gateway.estimating import SampleRun, job_estimate
from palette.gateway.schemas import PreviewRequest

pytestmark = pytest.mark.unit

PICO = Decimal(10) ** -12


class TestJobEstimate:
    def test_without_records_run_only_the_largest_worst_case_is_scaled(self) -> None:
        estimate = job_estimate(1000, [3_000, 7_000])
        assert estimate.worst_case_usd == "0.000007"
        assert (estimate.records_run, estimate.mean_usd, estimate.low_usd, estimate.high_usd) == (
            0,
            None,
            None,
            None,
        )
        assert (estimate.spent_usd, estimate.errors) == ("0", [])

    def test_mean_and_spread_are_the_records_run_times_num_records(self) -> None:
        run = SampleRun().add("seed", 2_000, None).add("more_seeds[0]", 5_000, None)
        estimate = job_estimate(1000, [9_000, 8_000], run)
        assert estimate.records_run == 2
        assert estimate.mean_usd == "0.0000035"
        assert (estimate.low_usd, estimate.high_usd) == ("0.000002", "0.000005")
        assert estimate.worst_case_usd == "0.000009"
        assert estimate.spent_usd == "0.000000007"

    def test_a_mean_that_is_not_a_whole_picodollar_is_rounded_up(self) -> None:
        run = SampleRun().add("seed", 1, None).add("a", 2, None).add("b", 2, None)
        assert job_estimate(1, [5], run).mean_usd == "0.000000000002"  # 5/3 picodollars
        assert job_estimate(3, [5], run).mean_usd == "0.000000000005"  # exactly 5

    def test_is_exact_for_a_million_records_of_odd_costs(self) -> None:
        costs = [123_456_789_012_345, 987_654_321_098_765]
        run = SampleRun().add("seed", costs[0], None).add("more_seeds[0]", costs[1], None)
        estimate = job_estimate(1_000_000, [10**18], run)
        assert Decimal(estimate.mean_usd or "") == Decimal(sum(costs) * 1_000_000 // 2) * PICO
        assert Decimal(estimate.high_usd or "") == Decimal(costs[1] * 1_000_000) * PICO
        assert estimate.worst_case_usd == "1000000000000"

    def test_a_record_stopped_early_is_left_out_but_its_cost_is_spent(self) -> None:
        run = SampleRun().add("seed", 10, None).add("more_seeds[0]", 4, "model call failed")
        estimate = job_estimate(10, [20, 20], run)
        assert (estimate.records_run, estimate.mean_usd) == (1, "0.0000000001")
        assert estimate.spent_usd == "0.000000000014"
        assert estimate.errors == ["more_seeds[0]: model call failed"]

    def test_needs_a_worst_case_and_a_record(self) -> None:
        with pytest.raises(ValueError, match="at least one"):
            job_estimate(10, [])
        with pytest.raises(ValueError, match="at least one"):
            job_estimate(0, [1])


class TestPreviewRequest:
    def test_a_job_of_a_thousand_records_is_estimated_by_default(self) -> None:
        request = PreviewRequest.model_validate({"seed": {"a": 1}})
        assert (request.num_records, request.more_seeds) == (1000, [])

    @pytest.mark.parametrize(
        "body",
        [
            {"seed": {}, "num_records": 0},
            {"seed": {}, "num_records": 1_000_001},
            {"seed": {}, "more_seeds": [{}] * 10},
        ],
    )
    def test_refuses_no_records_too_many_records_or_too_many_seeds(
        self, body: dict[str, object]
    ) -> None:
        with pytest.raises(ValueError, match=r"num_records|more_seeds"):
            PreviewRequest.model_validate(body)
