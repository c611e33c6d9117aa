"""The sandbox: private attributes refused when parsed, sizes checked before values are built."""

from __future__ import annotations

import time

import pytest

from palette.common.sandbox import MAX_BUILT_CHARS, MAX_RENDER_CHARS, text_size
from palette.common.templates import (
    RenderLimitError,
    SandboxError,
    Step,
    TemplateError,
    TemplateSpec,
    analyse,
    render,
)

pytestmark = pytest.mark.unit
M = "amazon.nova-micro-v1:0"
BIG = "x" * 199_999


def analysed(prompt: str) -> list[str]:
    return analyse(TemplateSpec(steps=(Step(id="s", model=M, prompt=prompt),)))


class TestPrivateAttributes:
    @pytest.mark.parametrize(
        ("source", "names"),
        [
            ("{{ ''.__class__.__mro__ }}", "'__class__', '__mro__'"),
            ("{{ cycler.__init__.__globals__ }}", "'__globals__', '__init__'"),
            ("{{ joiner['__globals__'] }}", "'__globals__'"),
            ("{{ range|attr('__globals__') }}", "'__globals__'"),
            ("{{ self._TemplateReference__context }}", "'_TemplateReference__context'"),
        ],
    )
    def test_are_refused_when_the_template_is_parsed(self, source: str, names: str) -> None:
        with pytest.raises(SandboxError, match=f"private .*{names}") as caught:
            analysed(source)
        assert caught.value.field == "steps[0].prompt"

    def test_a_seed_field_starting_with_one_underscore_is_a_requirement(self) -> None:
        assert analysed("{{ row._id }} {{ row['_key'] }}") == ["row._id", "row._key"]
        assert render("{{ row._id }}", {"row": {"_id": 7}}) == "7"

    def test_a_name_built_while_rendering_is_still_refused(self) -> None:
        with pytest.raises(SandboxError, match="not allowed in the sandbox"):
            render("{{ range|attr('__glo' ~ 'bals__') }}", {})


class TestSizeLimits:
    @pytest.mark.parametrize(
        ("source", "problem"),
        [
            ("{{ 'x' * 10**8 }}", "too large"),
            (
                "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
                "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                "operator ~",
            ),
            (
                "{% set ns = namespace(s='x') %}{% for i in range(64) %}"
                "{% set ns.s = ns.s + ns.s %}{% endfor %}",
                "operator +",
            ),
            ("{{ ((((2**64)**64)**64)**64)**64 }}", "bits"),
            (
                "{% set ns = namespace(n=10**64) %}{% for i in range(40) %}"
                "{% set ns.n = ns.n * ns.n %}{% endfor %}",
                "bits",
            ),
            ("{{ '%0999999999d' % 1 }}", "width or precision"),
            ("{{ '%*d' % (10**9, 1) }}", "format width"),
            ("{{ '{:>999999999}'.format(1) }}", "width or precision"),
            ("{{ 'x'.center(10**9) }}", "str.center"),
            ("{{ 'x'|center(10**9) }}", "center"),
            ("{{ ('x' * 100000)|replace('x', 'x' * 100000) }}", "replace"),
            ("{{ ('x' * 100000).replace('x', 'x' * 100000) }}", "str.replace"),
            ("{{ ['x' * 100000] * 100000 }}", "repeating"),
            ("{{ ('\t' * 100000).expandtabs(100000) }}", "expandtabs"),
            ("{{ ('a\nb' * 50000)|indent(100000) }}", "indent"),
            ("{{ ('ab' * 50000)|wordwrap(1, wrapstring='x' * 100000) }}", "wordwrap"),
            (
                "{% set s = 'x' * 150000 %}{% set ns = namespace() %}{% set ns.a = s %}"
                "{% set ns.b = s %}{{ ns }}",
                "printed",
            ),
            ("{% set s = 'x' * 150000 %}{{ [s, s]|join }}", "join"),
            ("{% set s = 'x' * 150000 %}{{ [s, s]|tojson }}", "tojson"),
            ("{% for i in range(99999) %}{{ 'y' * 100 }}{% endfor %}", "longer than 200000"),
        ],
    )
    def test_a_value_past_the_limits_is_refused_before_it_is_built(
        self, source: str, problem: str
    ) -> None:
        began = time.monotonic()
        with pytest.raises(RenderLimitError, match=problem):
            render(source, {}, seconds=5.0)
        assert time.monotonic() - began < 1.0

    def test_many_distinct_large_values_exhaust_the_budget(self) -> None:
        literal = "[" + ",".join(["s ~ 1"] * 2_000) + "]|length"
        with pytest.raises(RenderLimitError, match=f"more than {MAX_BUILT_CHARS}"):
            render("{% set s = 'x' * 199999 %}{{ " + literal + " }}", {})

    def test_a_macro_that_loops_is_bounded_too(self) -> None:
        source = (
            "{% macro m() %}{% for i in range(99999) %}{{ 'x' * 1000 ~ i }}{% endfor %}"
            "{% endmacro %}{{ m()|length }}"
        )
        with pytest.raises(RenderLimitError):
            render(source, {})

    def test_ordinary_templates_render_as_before(self) -> None:
        source = (
            "{% for t in tags %}{{ t.label|upper }}, {% endfor %}{{ '%05d'|format(42) }} "
            "{{ '{:>4}'.format('a') }} {{ 'a b'.replace(' ', '_') }} {{ [1, 2]|join(',') }} "
            "{{ 2**10 }} {{ 'ab' * 3 }} {{ x ~ '!' }} {{ dict(self=1) }} {{ 1234567|string }}"
        )
        context = {"tags": [{"label": "a"}], "x": "y"}
        assert render(source, context) == "A, 00042    a a_b 1,2 1024 ababab y! {'self': 1} 1234567"

    def test_a_large_seed_value_may_still_be_cut_down(self) -> None:
        assert render("{{ doc|truncate(9) }}", {"doc": "word " * 100_000}) == "word..."

    def test_the_largest_allowed_value_renders(self) -> None:
        assert len(render("{{ s }}", {"s": BIG})) == 199_999
        with pytest.raises(RenderLimitError):
            render("{{ s ~ s }}", {"s": BIG})

    def test_lipsum_is_not_a_global(self) -> None:
        assert analysed("{{ lipsum(5) }}") == ["lipsum"]
        with pytest.raises(TemplateError, match="undefined"):
            render("{{ lipsum(10**5) }}", {})


class TestTextSize:
    def test_counts_strings_containers_and_stops_past_the_limit(self) -> None:
        assert text_size("abc") == 3
        assert text_size({"k": ["ab", 1]}) == 1 + 1 + 1 + 2 + 1
        huge = [BIG] * 1_000
        assert MAX_RENDER_CHARS < text_size(huge) < MAX_RENDER_CHARS * 3
