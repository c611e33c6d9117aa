import pytest

from palette.common.pricing import PricingTable
from palette.common.templates import Step, TemplateSpec
from palette.scheduler.partitioning import lease_request, partition_ranges, record_estimate

pytestmark = pytest.mark.unit


class TestPartitionRanges:
    @pytest.mark.parametrize(("n", "size"), [(1, 1), (300, 100), (301, 100), (99, 100), (1000, 7)])
    def test_ranges_cover_every_record_exactly_once(self, n: int, size: int) -> None:
        ranges = partition_ranges(n, size)
        covered = [i for start, end in ranges for i in range(start, end)]
        assert covered == list(range(n))
        assert all(0 < end - start <= size for start, end in ranges)

    def test_rejects_bad_sizes(self) -> None:
        with pytest.raises(ValueError, match="size"):
            partition_ranges(10, 0)


class TestLeaseSizing:
    def test_minimum_is_one_record_and_amount_the_range(self) -> None:
        assert lease_request(100, per_record=50, needed=0) == (5000, 50)

    def test_a_reported_shortfall_raises_the_unit(self) -> None:
        assert lease_request(10, per_record=50, needed=80) == (800, 80)

    def test_estimate_grows_with_max_tokens_and_steps(self) -> None:
        pricing = PricingTable.load()
        model = "amazon.nova-pro-v1:0"
        one = TemplateSpec(steps=(Step(id="a", model=model, prompt="x", max_tokens=100),))
        two = TemplateSpec(
            steps=(
                Step(id="a", model=model, prompt="x", max_tokens=100),
                Step(id="b", model=model, prompt="{{ steps.a.output }}", max_tokens=100),
            )
        )
        assert record_estimate(two, pricing, 0) > 2 * record_estimate(one, pricing, 0)
        assert record_estimate(one, pricing, 0) >= pricing.cost(model, 1, 100)
