"""A template's trial render when it is written: limits and sandbox rules, not seed values."""

from __future__ import annotations

import time

import pytest

from palette.common.pricing import load_pricing
from palette.gateway.problems import Problem
from palette.gateway.schemas import CreateTemplate
from palette.gateway.templating import check_template, probe_seed, time_slices

pytestmark = pytest.mark.unit
M = "amazon.nova-micro-v1:0"
PRICING = load_pricing()


def template(*prompts: str) -> CreateTemplate:
    steps = [{"id": f"s{i}", "model": M, "prompt": p} for i, p in enumerate(prompts)]
    return CreateTemplate.model_validate({"name": "t", "steps": steps})


class TestProbeSeed:
    def test_has_every_required_path_as_a_short_string(self) -> None:
        assert probe_seed(["a.b.c", "a.d", "e"]) == {"a": {"b": {"c": "x"}, "d": "x"}, "e": "x"}


class TestTrialRender:
    @pytest.mark.parametrize(
        ("prompts", "field", "problem"),
        [
            (
                ("fine", "{% for i in range(10**9) %}{% endfor %}"),
                "steps[1].prompt",
                "Range too big",
            ),
            (("{{ 'x' * 10**8 }}",), "steps[0].prompt", "too large"),
            (("{{ range|attr('__glo' ~ 'bals__') }}",), "steps[0].prompt", "sandbox"),
        ],
    )
    def test_a_limit_or_sandbox_rule_broken_with_any_seed_is_refused(
        self, prompts: tuple[str, ...], field: str, problem: str
    ) -> None:
        with pytest.raises(Problem) as caught:
            check_template(template(*prompts), PRICING)
        assert caught.value.status_code == 422
        assert caught.value.errors[0]["field"] == field
        assert problem in caught.value.errors[0]["problem"]

    def test_a_render_that_loops_is_stopped_by_the_time_budget(self) -> None:
        loops = "{% for a in range(99999) %}{% for b in range(99999) %}{% endfor %}{% endfor %}"
        began = time.monotonic()
        with pytest.raises(Problem, match=r"longer than 0\.3s"):
            check_template(template(loops), PRICING, render_seconds=0.3)
        assert time.monotonic() - began < 2

    @pytest.mark.parametrize(
        "prompt",
        [
            "{% for i in range(n) %}{{ i }}{% endfor %}",  # n is a number in real seeds
            "{{ price * 2 }}",
            "{{ author.name.first }} {{ steps_done|int + 1 }}",
        ],
    )
    def test_errors_that_depend_on_the_seeds_values_are_left_for_render_time(
        self, prompt: str
    ) -> None:
        spec, requirements = check_template(template(prompt), PRICING)
        assert requirements
        assert spec.steps[0].prompt == prompt


class TestTimeSlices:
    def test_gives_what_is_left_then_refuses(self) -> None:
        slices = time_slices(0.05)
        assert 0 < next(slices) <= 0.05
        time.sleep(0.06)
        with pytest.raises(Exception, match=r"longer than 0\.05s"):
            next(slices)
