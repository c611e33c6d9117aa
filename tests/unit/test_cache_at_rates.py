"""Prompt caching beside service tiers and batch: one usage row format, one pricing rule."""

from __future__ import annotations

import pytest

from palette.common.messages import StepUsage
from palette.common.pricing import PricingTable
from palette.common.service_tiers import UnpricedRateError, rated_table, require_rate
from palette.common.steps import Step
from palette.devstack.converse import parse_request
from palette.devstack.prompt_cache import PromptCache
from palette.generator.cache_points import converse_content
from palette.generator.usage import UsageTally

pytestmark = pytest.mark.unit

PRICING = PricingTable.load()
PRO = "amazon.nova-pro-v1:0"
MICRO = "amazon.nova-micro-v1:0"


class TestUsageRows:
    def test_a_row_carries_cache_counts_and_its_own_rate_and_reads_back(self) -> None:
        tally = UsageTally()
        tally.add("a", PRO, 10, 20, 1, 300, 40)
        tally.add("b", PRO, 5, 6, 2, rate="default")
        tally.add("c", PRO, 1, 2, 1, 7, 0, rate="default")
        tally.add("d", MICRO, 1, 2)
        text = tally.encode()
        assert text == (
            f'[["a","{PRO}",1,10,20,300,40],["b","{PRO}",2,5,6,"default"],'
            f'["c","{PRO}",1,1,2,7,0,"default"],["d","{MICRO}",1,1,2]]'
        )
        assert UsageTally.decode(text) == tally

    def test_rows_written_before_the_merge_read_as_they_did(self) -> None:
        old = f'[["a","{PRO}",1,10,20],["b","{PRO}",1,1,2,"default"],["c","{PRO}",1,3,4,5,6]]'
        rows = UsageTally.decode(old).to_step_usages("batch")
        assert [(u.step_id, u.service_tier, u.cache_read_tokens) for u in rows] == [
            ("a", "batch", 0),
            ("b", "default", 0),
            ("c", "batch", 5),
        ]
        assert rows[2].cache_write_tokens == 6

    @pytest.mark.parametrize(
        "row",
        [
            '["a","m",1,2,"x"]',
            '["a","m",1,2,3,4]',
            '["a","m",1,2,3,4,"default"]',
            '["a","m",1,2,3,4,5,6]',
            '["a","m",1,2,3,-4,5]',
            '["a","m",1,2,3,4,5,"x","y"]',
        ],
    )
    def test_a_row_of_another_shape_is_refused(self, row: str) -> None:
        with pytest.raises(ValueError, match="bad usage row"):
            UsageTally.decode(f"[{row}]")

    def test_cost_prices_cache_tokens_at_the_default_tier_and_rows_at_their_rate(self) -> None:
        tally = UsageTally()
        tally.add("a", PRO, 10, 20, 1, 300, 40)
        tally.add("b", PRO, 5, 6, 1, rate="default")
        flex = rated_table(PRICING, "flex")
        assert tally.cost(PRICING, PRICING) == PRICING.cost(PRO, 10, 20, 300, 40) + PRICING.cost(
            PRO, 5, 6
        )
        assert tally.cost(flex, PRICING) == flex.cost(PRO, 10, 20, 300, 40) + PRICING.cost(
            PRO, 5, 6
        )

    def test_step_usage_has_both_a_tier_and_cache_tokens(self) -> None:
        usage = StepUsage(
            step_id="a", model_id=PRO, cache_read_tokens=3, service_tier="flex", calls=1
        )
        assert (usage.cache_read_tokens, usage.service_tier) == (3, "flex")


class TestCachePricesAtRates:
    def test_only_the_default_tier_has_cache_prices(self) -> None:
        assert PRICING.cache(PRO) is not None
        for rate in ("flex", "priority", "batch"):
            assert rated_table(PRICING, rate).cache(PRO) is None

    def test_a_cache_prompt_step_is_refused_at_flex_and_in_batch(self) -> None:
        cached = Step(id="a", model=PRO, prompt="p", cache_prompt=True)
        plain = Step(id="b", model=PRO, prompt="p")
        require_rate(PRICING, "default", [PRO], [cached])
        require_rate(PRICING, "flex", [PRO], [plain])
        for rate in ("flex", "priority", "batch"):
            with pytest.raises(UnpricedRateError, match="prompt-caching") as caught:
                require_rate(PRICING, rate, [PRO], [plain, cached])
            assert (caught.value.model_id, caught.value.rate) == (PRO, rate)

    def test_a_step_dumps_cache_prompt_only_when_set(self) -> None:
        assert "cache_prompt" not in Step(id="a", model=PRO, prompt="p").model_dump()
        step = Step(id="a", model=PRO, prompt="p", cache_prompt=True)
        assert step.model_dump()["cache_prompt"] is True


class TestEmulatorCachesAtTheDefaultTierOnly:
    def _call(self, tier: str) -> dict[str, object]:
        messages, system = converse_content("x " * 2000 + "tail", "Be brief.", 4000)
        body: dict[str, object] = {"messages": messages, "system": system}
        if tier != "default":
            body["serviceTier"] = {"type": tier}
        return body

    def test_a_flex_call_neither_reads_nor_writes_the_cache(self) -> None:
        cache = PromptCache({PRO: 1000})
        first = cache.use(PRO, parse_request(self._call("default")), 300.0, 0.0)
        assert first.write > 0
        again = cache.use(PRO, parse_request(self._call("default")), 300.0, 1.0)
        assert (again.read, again.write) == (first.write, 0)
        flex = cache.use(PRO, parse_request(self._call("flex")), 300.0, 2.0)
        assert (flex.read, flex.write) == (0, 0)
