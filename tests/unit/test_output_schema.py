"""Structured step outputs: schemas, judges, field references, requests and answers."""

from __future__ import annotations

import io
import random
from typing import Any

import botocore.session
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from botocore.validate import validate_parameters
from jsonschema import Draft202012Validator
from pydantic import ValidationError

from palette.common.output_schema import (
    OutputInvalidError,
    check_schema,
    field_problem,
    judge_schema,
    parse_output,
    probe_output,
)
from palette.common.record_filters import Dedup, check
from palette.common.steps import Step
from palette.common.structured_support import NoStructuredOutputError, load_support
from palette.common.templates import TemplateError, TemplateSpec, analyse
from palette.devstack.converse import ConverseRequestError
from palette.devstack.structured_answers import answer, ask_of, instance
from palette.generator.format_writers import ColumnPlan, CsvWriter, ParquetDatasetWriter
from palette.generator.records import FinishedRecord, decode_line, encode_part
from palette.generator.structured import for_step
from palette.generator.structured_columns import arrow_type, conform

MICRO = "amazon.nova-micro-v1:0"
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
LLAMA = "us.meta.llama3-1-8b-instruct-v1:0"
MISTRAL = "mistral.mistral-7b-instruct-v0:2"
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "population": {"type": "integer", "minimum": 1},
        "coastal": {"type": "boolean"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "geo": {"type": "object", "properties": {"lat": {"type": "number"}}},
        "extra": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
    },
    "required": ["city", "population"],
}


def spec(*steps: dict[str, Any]) -> TemplateSpec:
    return TemplateSpec.model_validate({"steps": list(steps)})


class TestSchemaCheck:
    def test_an_object_schema_is_accepted(self) -> None:
        assert check_schema(SCHEMA) is SCHEMA

    @pytest.mark.parametrize(
        ("schema", "problem"),
        [
            ({"type": "string"}, "object at the top"),
            ([1], "must be a JSON Schema object"),
            ({"type": "object", "properties": {"a": {"type": "no-such-type"}}}, "properties/a"),
        ],
    )
    def test_a_bad_schema_is_refused_saying_why(self, schema: Any, problem: str) -> None:
        with pytest.raises(ValueError, match=problem):
            check_schema(schema)

    def test_a_step_refuses_a_bad_schema_as_a_validation_error(self) -> None:
        with pytest.raises(ValidationError, match="output_schema"):
            Step(id="a", model=MICRO, prompt="p", output_schema={"type": "array"})


class TestJudgeStep:
    def test_its_schema_is_an_integer_score_in_the_scale_and_a_reason(self) -> None:
        step = Step(id="g", model=MICRO, prompt="p", kind="judge", rubric="r", scale=(0, 10))
        schema = step.answer_schema
        assert schema == judge_schema((0, 10))
        assert schema is not None
        assert schema["properties"]["score"] == {"type": "integer", "minimum": 0, "maximum": 10}
        assert parse_output('{"score": 10, "reason": "ok"}', None, schema) == {
            "score": 10,
            "reason": "ok",
        }
        with pytest.raises(OutputInvalidError, match="score"):
            parse_output('{"score": 11, "reason": "ok"}', None, schema)
        with pytest.raises(OutputInvalidError, match="reason"):
            parse_output('{"score": 3}', None, schema)

    def test_its_call_carries_the_rubric_after_the_steps_own_system_text(self) -> None:
        step = Step(id="g", model=MICRO, prompt="p", kind="judge", rubric="Be strict.")
        system = step.call_system("You grade tips.")
        assert system is not None
        assert system.startswith("You grade tips.")
        assert "Be strict." in system
        assert "from 1 (worst) to 5 (best)" in system

    @pytest.mark.parametrize(
        ("fields", "problem"),
        [
            ({"kind": "judge"}, "needs a rubric"),
            ({"kind": "judge", "rubric": "r", "scale": (5, 1)}, "low < high"),
            ({"kind": "judge", "rubric": "r", "output_schema": SCHEMA}, "generated"),
            ({"rubric": "r"}, "judge steps only"),
        ],
    )
    def test_inconsistent_fields_are_refused(self, fields: dict[str, Any], problem: str) -> None:
        with pytest.raises(ValidationError, match=problem):
            Step(id="g", model=MICRO, prompt="p", **fields)

    def test_a_text_step_serialises_without_the_structured_fields(self) -> None:
        dumped = Step(id="a", model=MICRO, prompt="p").model_dump()
        assert set(dumped) == {"id", "model", "prompt", "system", "max_tokens", "temperature"}


class TestFieldReferences:
    def test_fields_nested_fields_and_array_items_of_the_schema_are_accepted(self) -> None:
        template = spec(
            {"id": "facts", "model": MICRO, "prompt": "{{ topic }}", "output_schema": SCHEMA},
            {
                "id": "tip",
                "model": MICRO,
                "prompt": "{{ steps.facts.output.city | upper }} {{ steps.facts.output.geo.lat }}"
                " {{ steps.facts.output.tags[0] }} {{ steps.facts.output.city.title() }}",
            },
        )
        assert analyse(template) == ["topic"]

    @pytest.mark.parametrize(
        ("prompt", "named"),
        [
            ("{{ steps.facts.output.country }}", "'country'"),
            ("{{ steps.facts.output.geo.lon }}", "'geo.lon'"),
            ("{{ steps.grade.output.grade }}", "'grade'"),
        ],
    )
    def test_a_field_the_schema_lacks_is_refused_naming_it(self, prompt: str, named: str) -> None:
        template = spec(
            {"id": "facts", "model": MICRO, "prompt": "p", "output_schema": SCHEMA},
            {"id": "grade", "model": MICRO, "prompt": "p", "kind": "judge", "rubric": "r"},
            {"id": "last", "model": MICRO, "prompt": prompt},
        )
        with pytest.raises(TemplateError) as caught:
            analyse(template)
        assert caught.value.field == "steps[2].prompt"
        assert named in caught.value.problem

    def test_keep_if_and_dedup_read_only_fields_of_the_schema(self) -> None:
        template = spec(
            {"id": "facts", "model": MICRO, "prompt": "p", "output_schema": SCHEMA},
            {"id": "grade", "model": MICRO, "prompt": "p", "kind": "judge", "rubric": "r"},
        )
        check(template, "steps.grade.output.score >= 4", Dedup(field="steps.facts.output.city"))
        with pytest.raises(TemplateError, match="'points'"):
            check(template, "steps.grade.output.points >= 4", None)
        with pytest.raises(TemplateError, match="'town'"):
            check(template, None, Dedup(field="steps.facts.output.town"))

    def test_a_schema_without_listed_fields_accepts_any(self) -> None:
        assert field_problem({"type": "object"}, ["anything", "below"]) is None

    def test_a_probe_answer_has_every_field(self) -> None:
        probe = probe_output(SCHEMA, "#")
        assert probe["geo"] == {"lat": "#"}
        assert probe["tags"] == ["#"]


class TestStructuredRequests:
    @pytest.mark.parametrize(
        ("model", "field"), [(HAIKU, "outputConfig"), (MICRO, "toolConfig"), (LLAMA, "toolConfig")]
    )
    def test_each_model_is_asked_in_its_way_in_converse_shape(self, model: str, field: str) -> None:
        output = for_step(
            Step(id="a", model=model, prompt="p", output_schema=SCHEMA), load_support()
        )
        assert output is not None
        request = {
            "modelId": model,
            "messages": [{"role": "user", "content": [{"text": "p"}]}],
            **output.request_fields(),
        }
        assert field in request
        shape = (
            botocore.session.get_session()
            .get_service_model("bedrock-runtime")
            .operation_model("Converse")
            .input_shape
        )
        validate_parameters(request, shape)  # raises when botocore's model refuses it

    def test_a_model_without_either_is_refused(self) -> None:
        with pytest.raises(NoStructuredOutputError, match="mistral"):
            for_step(
                Step(id="a", model=MISTRAL, prompt="p", kind="judge", rubric="r"), load_support()
            )

    def test_a_text_step_asks_for_nothing(self) -> None:
        assert for_step(Step(id="a", model=MISTRAL, prompt="p"), load_support()) is None


class TestEmulatorAnswers:
    def body(self, model: str, step: Step) -> dict[str, Any]:
        output = for_step(step, load_support())
        assert output is not None
        return {"messages": [{"role": "user", "content": [{"text": "p"}]}]} | (
            output.request_fields()
        )

    @pytest.mark.parametrize("model", [HAIKU, MICRO])
    def test_answers_match_the_schema_and_invalid_ones_do_not(self, model: str) -> None:
        step = Step(id="a", model=model, prompt="p", output_schema=SCHEMA)
        output = for_step(step, load_support())
        assert output is not None
        ask = ask_of(model, self.body(model, step))
        assert ask is not None
        for seed in range(30):
            good = answer(ask, seed, 10, 512, invalid=False)
            value = output.parse(good.text, good.tool[2] if good.tool else None)
            again = answer(ask, seed, 10, 512, invalid=False)
            assert (again.text, again.tool) == (good.text, good.tool), "same request, same answer"
            assert value
            bad = answer(ask, seed, 10, 512, invalid=True)
            with pytest.raises(OutputInvalidError):
                output.parse(bad.text, bad.tool[2] if bad.tool else None)
            assert good.input_tokens > 10, "the schema counts as input"

    def test_values_match_schemas_of_every_type(self) -> None:
        rng = random.Random(3)
        for _ in range(50):
            value = instance(SCHEMA, rng)
            Draft202012Validator(SCHEMA).validate(value)

    def test_judge_scores_spread_across_the_scale(self) -> None:
        step = Step(id="g", model=HAIKU, prompt="p", kind="judge", rubric="r", scale=(1, 5))
        ask = ask_of(HAIKU, self.body(HAIKU, step))
        assert ask is not None
        scores = {
            int(
                parse_output(answer(ask, seed, 1, 200, invalid=False).text, None, ask.schema)[
                    "score"
                ]
            )
            for seed in range(40)
        }
        assert scores == {1, 2, 3, 4, 5}

    def test_structured_output_is_refused_for_a_tool_only_model(self) -> None:
        step = Step(id="a", model=HAIKU, prompt="p", output_schema=SCHEMA)
        with pytest.raises(ConverseRequestError, match="structured output"):
            ask_of(MICRO, self.body(HAIKU, step))
        with pytest.raises(ConverseRequestError, match="tool use"):
            ask_of(
                MISTRAL,
                self.body(MICRO, Step(id="a", model=MICRO, prompt="p", output_schema=SCHEMA)),
            )


class TestTypedExport:
    STEPS = (
        Step(id="facts", model=MICRO, prompt="p", output_schema=SCHEMA),
        Step(id="grade", model=MICRO, prompt="p", kind="judge", rubric="r"),
    )
    VALUE: dict[str, Any] = {
        "city": "Oslo",
        "population": 700000,
        "coastal": True,
        "tags": ["fjord"],
        "geo": {"lat": 59},
        "extra": 3,
    }

    def record(self) -> FinishedRecord:
        return FinishedRecord(
            index=0,
            seed_index=0,
            outputs={"facts": self.VALUE, "grade": {"score": 4, "reason": "fine"}},
            models={"facts": MICRO, "grade": MICRO},
            usage={"facts": (10, 20), "grade": (5, 6)},
        )

    def test_arrow_types_follow_the_schema(self) -> None:
        assert arrow_type(SCHEMA) == pa.struct(
            [
                ("city", pa.string()),
                ("population", pa.int64()),
                ("coastal", pa.bool_()),
                ("tags", pa.list_(pa.string())),
                ("geo", pa.struct([("lat", pa.float64())])),
                ("extra", pa.string()),
            ]
        )
        assert conform(self.VALUE, SCHEMA)["geo"] == {"lat": 59.0}
        assert conform(self.VALUE, SCHEMA)["extra"] == "3"

    def test_parquet_keeps_the_types(self) -> None:
        plan = ColumnPlan(self.STEPS)
        sink = io.BytesIO()
        writer = ParquetDatasetWriter(sink, plan.schema(), 10)
        writer.write(plan.row("job", self.record()))
        writer.close()
        table = pq.read_table(io.BytesIO(sink.getvalue()), use_threads=False)
        row = table.to_pylist()[0]
        assert row["facts"]["population"] == 700000
        assert row["facts"]["geo"] == {"lat": 59.0}
        assert row["grade"] == {"score": 4, "reason": "fine"}
        assert table.schema.field("grade").type == pa.struct(
            [("score", pa.int64()), ("reason", pa.string())]
        )

    def test_csv_has_a_dotted_column_per_leaf_field(self) -> None:
        plan = ColumnPlan(self.STEPS)
        sink = io.BytesIO()
        writer = CsvWriter(sink, plan.csv_columns())
        writer.write(plan.row("job", self.record()))
        writer.close()
        header, row = sink.getvalue().decode().splitlines()
        columns = header.split(",")
        assert columns[4:11] == [
            "facts.city",
            "facts.population",
            "facts.coastal",
            "facts.tags",
            "facts.geo.lat",
            "facts.extra",
            "grade.score",
        ]
        assert "true" in row.split(",")

    def test_a_part_line_keeps_the_object(self) -> None:
        line = encode_part("job", [self.record()]).splitlines()[0]
        assert decode_line(line).outputs["facts"] == self.VALUE
