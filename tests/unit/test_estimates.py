"""The one worst-case rule (palette.common.estimates) and the services that use it."""

from __future__ import annotations

from typing import Any

import pytest

from palette.common.estimates import (
    OUTPUT_BYTES_PER_TOKEN,
    call_worst_case,
    output_bytes,
    pending_input_bound,
    record_worst_case,
    rendered_call_worst_case,
    seed_bytes,
)
from palette.common.money import usd_to_picos
from palette.common.pricing import TokenPrice, load_pricing
from palette.common.templates import Step, TemplateSpec, render, step_context
from palette.common.token_bounds import MESSAGE_OVERHEAD_TOKENS, input_token_bound
from palette.gateway.previewing import preview_steps
from palette.scheduler.partitioning import record_estimate, summarize_seeds

pytestmark = pytest.mark.unit

PRICE = TokenPrice(input_picos=1_000_000, output_picos=5_000_000)
PRICING = load_pricing()
MICRO, HAIKU = "amazon.nova-micro-v1:0", "anthropic.claude-haiku-4-5-20251001-v1:0"
TEMPLATE = TemplateSpec(
    steps=(
        Step(id="q", model=MICRO, prompt="Ask about {{ product }} as a {{ role }}.", max_tokens=60),
        Step(
            id="a",
            model=HAIKU,
            system="Agent for {{ product }}.",
            prompt="Answer: {{ steps.q.output }}",
            max_tokens=80,
        ),
    )
)


def generator_checks(template: TemplateSpec, seed: dict[str, Any], outputs: list[str]) -> list[int]:
    """The generator's check before each call of a record whose steps answer ``outputs``."""
    made: dict[str, str] = {}
    checks = []
    for step, output in zip(template.steps, outputs, strict=True):
        context = step_context(seed, made)
        prompt = render(step.prompt, context)
        system = render(step.system, context) if step.system else None
        checks.append(
            rendered_call_worst_case(PRICING.price(step.model), prompt, system, step.max_tokens)
        )
        made[step.id] = output
    return checks


def longest_outputs(template: TemplateSpec) -> list[str]:
    """Outputs as large as the rule counts them: max_tokens at 8 bytes per token."""
    return ["x" * output_bytes(step.max_tokens) for step in template.steps]


class TestTheRule:
    def test_is_the_input_bound_at_input_price_plus_max_tokens_at_output_price(self) -> None:
        assert call_worst_case(PRICE, 10, 20) == 10 * 1_000_000 + 20 * 5_000_000

    def test_a_rendered_call_is_priced_on_its_exact_byte_bound(self) -> None:
        # What the generator checks before each call: unchanged, exactly this strict.
        expected = input_token_bound("hello", "sys") * 1_000_000 + 7 * 5_000_000
        assert rendered_call_worst_case(PRICE, "hello", "sys", 7) == expected
        assert input_token_bound("hello", "sys") == 5 + 3 + 2 * MESSAGE_OVERHEAD_TOKENS

    def test_an_output_token_counts_eight_bytes_in_a_later_prompt(self) -> None:
        # The scheduler counted 4, the preview and the generator 8.
        assert OUTPUT_BYTES_PER_TOKEN == 8
        assert output_bytes(100) == 800

    def test_a_seed_counts_its_real_size_as_json(self) -> None:
        # The scheduler counted a fixed 256 bytes whatever the seed.
        assert seed_bytes({"a": "é" * 300}) == len(b'{"a": "') + 600 + 2

    def test_a_pending_bound_with_nothing_pending_is_never_below_the_exact_bound(self) -> None:
        for prompt, system in [("p", None), ("p", "s"), ("p", ""), ("", "")]:
            assert pending_input_bound(prompt, system, 0) >= input_token_bound(prompt, system)
        assert pending_input_bound("p", "", 40) == input_token_bound("p", "x" * 40)


class TestRecordWorstCase:
    STEPS = (
        Step(id="a", model="m", prompt="{{ topic }}", max_tokens=10),
        Step(id="b", model="m", prompt="{{ steps.a.output }}", max_tokens=20),
    )

    def test_sums_exact_worst_cases_when_known(self) -> None:
        assert record_worst_case(self.STEPS, {"m": PRICE}, 0, {"a": 5, "b": 7}) == 12

    def test_uses_the_largest_observed_for_steps_not_rendered(self) -> None:
        needed = record_worst_case(self.STEPS, {"m": PRICE}, 0, {"a": 5}, {"a": 100, "b": 9})
        assert needed == 14

    def test_bounds_a_step_not_rendered_from_its_source_the_seed_and_earlier_outputs(
        self,
    ) -> None:
        # One message overhead per message: the scheduler added two to every
        # step, the generator's record estimate one more than its check.
        needed = record_worst_case(self.STEPS, {"m": PRICE}, 50, {"a": 5})
        b_input = len(b"{{ steps.a.output }}") + MESSAGE_OVERHEAD_TOKENS + 50 + 10 * 8
        assert needed == 5 + call_worst_case(PRICE, b_input, 20)

    @pytest.mark.parametrize(
        "extra",
        [
            pytest.param({"kind": "judge", "rubric": "Is it a clear question?"}, id="judge"),
            pytest.param(
                {"output_schema": {"type": "object", "properties": {"q": {"type": "string"}}}},
                id="schema",
            ),
        ],
    )
    def test_a_structured_steps_estimate_counts_what_its_call_adds_and_bounds_the_call(
        self, extra: dict[str, Any]
    ) -> None:
        # A batch reserves the rendered worst cases of a whole round from a lease the
        # estimate sized: the schema and a judge's instructions must be in both.
        step = Step(id="q", model="m", prompt="Ask about {{ topic }}.", max_tokens=30, **extra)
        seed = {"topic": "maps"}
        prompt = render(step.prompt, step_context(seed, {}))
        system = step.bound_system(step.call_system(None))
        assert system is not None
        rendered = rendered_call_worst_case(PRICE, prompt, system, step.max_tokens)
        estimate = record_worst_case([step], {"m": PRICE}, seed_bytes(seed))
        assert estimate >= rendered
        text = Step(id="q", model="m", prompt=step.prompt, max_tokens=30)
        added = len(system.encode()) + MESSAGE_OVERHEAD_TOKENS  # the system message
        bare = record_worst_case([text], {"m": PRICE}, seed_bytes(seed))
        assert estimate - bare == call_worst_case(PRICE, added, 0)


class TestOneRuleInEveryService:
    SEED: dict[str, Any] = {"product": "k" * 2000, "role": "chef"}

    def test_the_schedulers_first_estimate_is_the_common_record_worst_case(self) -> None:
        prices = {model: PRICING.price(model) for model in TEMPLATE.models}
        size = seed_bytes(self.SEED)
        assert record_estimate(TEMPLATE, PRICING, size) == record_worst_case(
            TEMPLATE.steps, prices, size
        )

    def test_the_first_lease_covers_a_record_with_a_large_seed_and_long_outputs(self) -> None:
        # The old scheduler rule (256 seed bytes, 4 bytes per output token)
        # sized this record below what the generator then checks.
        checks = generator_checks(TEMPLATE, self.SEED, longest_outputs(TEMPLATE))
        first = record_estimate(TEMPLATE, PRICING, seed_bytes(self.SEED))
        assert first >= sum(checks)

    def test_the_preview_is_the_generators_check_when_outputs_are_as_large_as_counted(
        self,
    ) -> None:
        views, total = preview_steps(TEMPLATE, self.SEED, PRICING)
        checks = generator_checks(TEMPLATE, self.SEED, longest_outputs(TEMPLATE))
        assert [usd_to_picos(view.worst_case_usd) for view in views] == checks
        assert total == sum(checks)
        shorter = generator_checks(TEMPLATE, self.SEED, ["a short answer", "fine"])
        assert all(c <= usd_to_picos(v.worst_case_usd) for c, v in zip(shorter, views, strict=True))

    def test_the_scheduler_sizes_leases_with_the_largest_seed(self) -> None:
        seeds = [{"n": 1}, {"n": "x" * 900}, {"n": 3}]
        summary = summarize_seeds(iter(seeds))
        assert (summary.count, summary.largest_bytes) == (3, seed_bytes(seeds[1]))
