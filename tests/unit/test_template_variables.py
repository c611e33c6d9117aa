"""Template variables through the template checks, the part lines and the dataset columns."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from palette.common.messages import OutputFormat
from palette.common.samplers import draw_variables
from palette.common.templates import TemplateError, TemplateSpec, analyse, renders_the_same
from palette.generator.format_writers import ColumnPlan, make_writer
from palette.generator.records import FinishedRecord, decode_line, encode_part

pytestmark = pytest.mark.unit


def spec(prompt: str, **variables: object) -> TemplateSpec:
    return TemplateSpec.model_validate(
        {"steps": [{"id": "q", "model": "m", "prompt": prompt}], "variables": variables}
    )


TONE = {"type": "category", "values": ["formal", "casual"]}
AGE = {"type": "int", "min": 18, "max": 80}
CITY = {"type": "choice_from_seed", "field": "place.city"}


def test_a_declared_variable_is_no_seed_field_and_a_sampled_field_is() -> None:
    template = spec(
        "{{ topic }} for a {{ vars.age }}-year-old in {{ vars.city }}", age=AGE, city=CITY
    )
    assert analyse(template) == ["place.city", "topic"]


def test_an_undeclared_variable_is_refused_naming_the_step_field() -> None:
    with pytest.raises(TemplateError) as caught:
        analyse(spec("{{ vars.mood }}", tone=TONE))
    assert caught.value.field == "steps[0].prompt"
    assert "vars.mood is not a variable of the template (declared: tone)" in caught.value.problem
    with pytest.raises(TemplateError, match=r"use vars\.<name>"):
        analyse(spec("{{ vars }}", tone=TONE))


def test_bad_variable_names_and_samplers_are_refused() -> None:
    with pytest.raises(ValidationError, match="should match pattern"):
        spec("x", **{"1bad": TONE})
    with pytest.raises(ValidationError, match="min \\(9\\) is greater than max \\(1\\)"):
        spec("x", n={"type": "int", "min": 9, "max": 1})


def test_a_first_step_reading_variables_is_rendered_per_record() -> None:
    assert renders_the_same("{{ topic }}")
    assert not renders_the_same("{{ topic }} {{ vars.tone }}")


def test_a_part_line_carries_the_draws_and_reads_them_back() -> None:
    drawn = draw_variables(spec("x", tone=TONE, age=AGE).variables, "job", 7)
    record = FinishedRecord(index=7, seed_index=1, outputs={"q": "x"}, variables=drawn)
    back = decode_line(encode_part("job", [record]))
    assert back.variables == drawn
    assert back.resumed().variables == drawn
    plain = FinishedRecord(index=8, seed_index=1, outputs={"q": "x"})
    assert "vars" not in plain.line("job")  # a template without variables: lines as before


def test_each_variable_is_a_typed_column() -> None:
    variables = spec(
        "x",
        tone=TONE,
        age=AGE,
        ratio={"type": "float", "min": 0, "max": 1},
        flag={"type": "category", "values": [True, False]},
        city=CITY,
    ).variables
    plan = ColumnPlan(spec("x").steps, variables)
    assert plan.names[-5:] == ["vars.tone", "vars.age", "vars.ratio", "vars.flag", "vars.city"]
    kinds = {f.name: f.type for f in plan.schema()}
    assert (kinds["vars.tone"], kinds["vars.age"], kinds["vars.ratio"]) == (
        pa.string(),
        pa.int64(),
        pa.float64(),
    )
    assert (kinds["vars.flag"], kinds["vars.city"]) == (pa.bool_(), pa.string())
    record = FinishedRecord(
        index=0,
        seed_index=0,
        outputs={"q": "x"},
        models={"q": "m"},
        usage={"q": (1, 2)},
        variables={"tone": "casual", "age": 40, "ratio": 1, "flag": True, "city": 75001},
    )
    sink = io.BytesIO()
    writer = make_writer(OutputFormat.PARQUET, sink, plan, 10)
    writer.write(plan.row("job", record))
    writer.close()
    row = pq.read_table(io.BytesIO(sink.getvalue())).to_pylist()[0]
    assert (row["vars.tone"], row["vars.age"], row["vars.ratio"]) == ("casual", 40, 1.0)
    assert (row["vars.flag"], row["vars.city"]) == (True, "75001")
