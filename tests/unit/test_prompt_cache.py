"""Prompt caching: where cache points go, what the emulator bills, how it is priced."""

from __future__ import annotations

from typing import Any

import pytest

from palette.common.estimates import call_worst_case
from palette.common.messages import StepUsage
from palette.common.pricing import PricingTable, TokenPrice
from palette.common.prompt_cache import cache_split, static_prefix
from palette.devstack.converse import complete, parse_request
from palette.devstack.prompt_cache import PromptCache, cache_points, with_cache
from palette.generator.cache_points import converse_content
from palette.generator.usage import UsageTally

pytestmark = pytest.mark.unit

PRICING = PricingTable.load()
SONNET = "anthropic.claude-sonnet-4-5-20250929-v1:0"
MICRO = "amazon.nova-micro-v1:0"


class TestStaticPrefix:
    def test_is_the_text_before_the_first_tag(self) -> None:
        assert static_prefix("Rules: be kind.\nQ: {{ q }} {% if x %}") == "Rules: be kind.\nQ: "
        assert static_prefix("no tags at all") == "no tags at all"
        assert static_prefix("{# note #}text") == ""

    def test_split_is_after_the_prefix_when_the_render_starts_with_it(self) -> None:
        assert cache_split("Rules.\n{{ q }}", "Rules.\nWhy?") == len("Rules.\n")
        assert cache_split("Rules.\n{%- if 1 %}x{% endif %}", "Rules.x") == len("Rules.")
        assert cache_split("{{ q }} rules", "Why? rules") == 0


class TestConverseContent:
    def test_without_caching_the_call_is_one_block(self) -> None:
        messages, system = converse_content("Hi", "Be brief.", None)
        assert messages == [{"role": "user", "content": [{"text": "Hi"}]}]
        assert system == [{"text": "Be brief."}]

    def test_cache_points_follow_the_system_prompt_and_the_static_prefix(self) -> None:
        messages, system = converse_content("Rules. Why?", "Be brief.", 7)
        point = {"cachePoint": {"type": "default"}}
        assert system == [{"text": "Be brief."}, point]
        assert messages[0]["content"] == [{"text": "Rules. "}, point, {"text": "Why?"}]

    def test_no_prefix_caches_the_system_prompt_only(self) -> None:
        messages, system = converse_content("Why?", None, 0)
        assert system is None
        assert messages[0]["content"] == [{"text": "Why?"}]


def call(system: str, prompt: str, split: int | None) -> Any:
    messages, blocks = converse_content(prompt, system, split)
    return parse_request({"messages": messages, "system": blocks or [], "inferenceConfig": {}})


class TestEmulatorPromptCache:
    LONG = " ".join(["word"] * 1100)  # 1,100 tokens

    def test_first_call_writes_later_calls_read_until_the_ttl_ends(self) -> None:
        cache = PromptCache({SONNET: 1024})
        first = cache.use(SONNET, call(self.LONG, "Q1", 0), ttl=300, now=0)
        assert first.read == 0
        assert first.write == 1100 + 3
        second = cache.use(SONNET, call(self.LONG, "Q2", 0), ttl=300, now=100)
        assert (second.read, second.write) == (first.write, 0)
        late = cache.use(SONNET, call(self.LONG, "Q3", 0), ttl=300, now=401)
        assert (late.read, late.write) == (0, first.write)

    def test_a_prefix_below_the_minimum_or_of_another_model_is_not_cached(self) -> None:
        cache = PromptCache({SONNET: 1024})
        short = call("word " * 100, "Q", 0)
        assert cache.use(SONNET, short, 300, 0) == cache.use(SONNET, short, 300, 1)
        assert cache.use(SONNET, short, 300, 1).write == 0
        assert cache.use(MICRO, call(self.LONG, "Q", 0), 300, 0).write == 0

    def test_cache_tokens_leave_input_tokens_and_the_points_count_as_input_tokens(self) -> None:
        request = call(self.LONG, "Rules " + self.LONG + " Q?", len("Rules " + self.LONG + " "))
        points = cache_points(request)
        assert [tokens for tokens, _ in points] == [1103, 1103 + 3 + 2 + 1100]
        whole = complete(SONNET, request, 16)
        used = PromptCache({SONNET: 1024}).use(SONNET, request, 300, 0)
        billed = with_cache(whole, used)
        assert billed.cache_write == points[-1][0]
        assert billed.input_tokens + billed.cache_write == whole.input_tokens
        assert billed.body(0.1)["usage"]["cacheWriteInputTokens"] == billed.cache_write


class TestCachePrices:
    def test_cache_tokens_are_priced_exactly(self) -> None:
        price = PRICING.price(SONNET)
        assert (price.cache_read_picos, price.cache_write_picos) == (300_000, 3_750_000)
        assert price.cost(10, 20, 100, 1000) == (
            10 * 3_000_000 + 20 * 15_000_000 + 100 * 300_000 + 1000 * 3_750_000
        )

    def test_the_worst_case_of_a_cached_call_counts_a_cache_write(self) -> None:
        price = PRICING.price(SONNET)
        assert call_worst_case(price, 100, 10, cached=True) == 100 * 3_750_000 + 10 * 15_000_000
        assert call_worst_case(price, 100, 10) == price.cost(100, 10)
        assert call_worst_case(price, 100, 10, cached=True) >= price.cost(0, 10, 0, 100)
        plain = TokenPrice(input_picos=5, output_picos=7)
        assert plain.cost(1, 1, 2, 3) == 5 + 7 + 2 * 5 + 3 * 5

    def test_a_model_without_a_cache_entry_has_no_prompt_caching(self) -> None:
        assert PRICING.cache("meta.llama3-1-8b-instruct-v1:0") is None
        cache = PRICING.cache("us.amazon.nova-micro-v1:0")
        assert cache is not None
        assert cache.min_tokens == 1000


class TestUsageWithCache:
    def test_a_tally_carries_cache_tokens_through_its_encoding_and_messages(self) -> None:
        tally = UsageTally()
        tally.add("a", SONNET, 10, 20, 1, 300, 0)
        tally.add("b", MICRO, 1, 2)
        text = tally.encode()
        assert text == f'[["a","{SONNET}",1,10,20,300,0],["b","{MICRO}",1,1,2]]'
        assert UsageTally.decode(text) == tally
        rows = tally.to_step_usages()
        assert rows[0] == StepUsage(
            step_id="a",
            model_id=SONNET,
            calls=1,
            input_tokens=10,
            output_tokens=20,
            cache_read_tokens=300,
        )
        assert tally.cost(PRICING) == PRICING.cost(SONNET, 10, 20, 300) + PRICING.cost(MICRO, 1, 2)


class TestInvocationLogWithCache:
    def test_the_log_record_carries_cache_tokens_and_reconciliation_prices_them(self) -> None:
        from datetime import UTC, datetime

        from palette.accounting import ledger
        from palette.accounting.invocations import parse_record
        from palette.devstack.invocation_log import invocation_record

        record = invocation_record(
            request_id="r1",
            model_id=SONNET,
            input_tokens=10,
            output_tokens=20,
            request_metadata={"lease_id": "L", "step": "a", "call_id": "c1"},
            at=datetime(2026, 12, 7, tzinfo=UTC),
            account="123456789012",
            region="us-east-1",
            cache_read_tokens=1100,
            cache_write_tokens=7,
        )
        assert record["input"]["cacheReadInputTokenCount"] == 1100
        call = parse_record(record, "test")
        assert call is not None
        assert (call.cache_read_tokens, call.cache_write_tokens) == (1100, 7)
        usage = ledger.logged_usage([call], PRICING)
        assert usage["a"]["cost"] == PRICING.cost(SONNET, 10, 20, 1100, 7)
        assert usage["a"]["cache_read_tokens"] == 1100
