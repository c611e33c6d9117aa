"""Template preview without a model, YAML import/export and cursors (pure logic)."""

from __future__ import annotations

import pytest

from palette.common.estimates import OUTPUT_BYTES_PER_TOKEN
from palette.common.money import usd_string
from palette.common.pricing import load_pricing
from palette.common.templates import TemplateError, TemplateSpec
from palette.common.token_bounds import input_token_bound
from palette.gateway.pagination import (
    decode_cursor,
    encode_cursor,
    job_cursor,
    job_position,
    template_cursor,
    template_position,
)
from palette.gateway.previewing import PLACEHOLDER, preview_steps
from palette.gateway.problems import Problem
from palette.gateway.template_yaml import from_yaml, to_yaml

pytestmark = pytest.mark.unit

PRICING = load_pricing()
MICRO, HAIKU = "amazon.nova-micro-v1:0", "anthropic.claude-haiku-4-5-20251001-v1:0"
STEPS = [
    {"id": "q", "model": MICRO, "prompt": "Ask about {{ product }}.", "max_tokens": 60},
    {
        "id": "a",
        "model": HAIKU,
        "system": "Agent for {{ product }}.",
        "prompt": "Answer {{ steps.q.output | upper }} and again {{ steps.q.output }}",
        "max_tokens": 80,
    },
]


def spec() -> TemplateSpec:
    return TemplateSpec.model_validate({"steps": STEPS})


class TestPreview:
    def test_first_step_is_rendered_exactly_and_priced_at_its_worst_case(self) -> None:
        steps, _ = preview_steps(spec(), {"product": "kettle"}, PRICING)
        first = steps[0]
        assert first.prompt == "Ask about kettle."
        assert first.input_tokens == input_token_bound("Ask about kettle.")
        price = PRICING.price(MICRO)
        worst = first.input_tokens * price.input_picos + 60 * price.output_picos
        assert first.worst_case_usd == usd_string(worst)

    def test_earlier_outputs_show_as_placeholders_counted_at_their_maximum(self) -> None:
        steps, total = preview_steps(spec(), {"product": "kettle"}, PRICING)
        second = steps[1]
        shown = PLACEHOLDER.format("q")
        assert second.prompt == f"Answer {shown} and again {shown}"
        assert second.system == "Agent for kettle."
        bare = input_token_bound("Answer  and again ", "Agent for kettle.")
        assert second.input_tokens == bare + 2 * 60 * OUTPUT_BYTES_PER_TOKEN
        price = PRICING.price(HAIKU)
        worst2 = second.input_tokens * price.input_picos + 80 * price.output_picos
        price1 = PRICING.price(MICRO)
        worst1 = steps[0].input_tokens * price1.input_picos + 60 * price1.output_picos
        assert total == worst1 + worst2

    def test_a_seed_that_cannot_render_names_the_step(self) -> None:
        with pytest.raises(TemplateError) as caught:
            preview_steps(spec(), {"other": 1}, PRICING)
        assert caught.value.field == "steps[0].prompt"


class TestYaml:
    def test_export_reads_back_as_the_same_template(self) -> None:
        doc = {
            "template_id": "t1",
            "version": 3,
            "name": 'Q & A: "quoted"',
            "public": True,
            "steps": [
                {
                    **s,
                    "system": s.get("system"),
                    "temperature": 0.7,
                    **({"cache_prompt": True} if i == 1 else {}),
                }
                for i, s in enumerate(STEPS)
            ],
            "schema_requirements": ["product"],
        }
        text = to_yaml(doc)
        assert text.startswith("# Plot Palette template t1 version 3\n")
        back = from_yaml(text.encode())
        assert back.name == doc["name"]
        assert back.public is True
        assert [s.model_dump(exclude_none=True) for s in back.steps] == [
            {k: v for k, v in s.items() if v is not None} for s in doc["steps"]
        ]

    @pytest.mark.parametrize(
        ("body", "problem"),
        [
            (b"a: &x [1]\nb: *x\n", "aliases"),
            (b"name: [unclosed\n", "syntax"),
            (b"- just\n- a list\n", "mapping"),
            (b"\xff\xfe", "UTF-8"),
            (b"plot_palette_template: 2\nname: x\nsteps: []\n", "plot_palette_template"),
            (b"!!python/object:os.system {}\n", "YAML"),
        ],
    )
    def test_unreadable_or_unsafe_yaml_is_a_422(self, body: bytes, problem: str) -> None:
        with pytest.raises(Problem) as caught:
            from_yaml(body)
        assert caught.value.status_code == 422
        assert problem in caught.value.detail

    def test_an_invalid_template_names_each_field(self) -> None:
        with pytest.raises(Problem) as caught:
            from_yaml(b"name: x\nsteps:\n  - id: 1bad\n    model: m\n    prompt: p\nextra: 1\n")
        fields = {e["field"] for e in caught.value.errors}
        assert {"steps[0].id", "extra"} <= fields


class TestCursors:
    def test_job_cursor_round_trips(self) -> None:
        from datetime import UTC, datetime

        created = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
        assert job_position(job_cursor(created, "abc")) == (created, "abc")
        assert template_position(template_cursor("t-1")) == "t-1"

    @pytest.mark.parametrize(
        "cursor",
        [
            "not base64 !",
            encode_cursor({"x": "1"}),
            encode_cursor({"c": "2026-01-01", "i": "a"}),  # no time zone
            encode_cursor({"c": "yesterday", "i": "a"}),
            encode_cursor({"c": 5, "i": "a"}),
            "A" * 2000,
        ],
    )
    def test_a_cursor_not_issued_by_the_list_is_a_422(self, cursor: str) -> None:
        with pytest.raises(Problem) as caught:
            job_position(cursor)
        assert caught.value.status_code == 422
        assert caught.value.errors[0]["field"] == "cursor"

    def test_decode_checks_the_keys(self) -> None:
        with pytest.raises(Problem):
            decode_cursor(encode_cursor({"t": "x", "extra": "y"}), ("t",))
