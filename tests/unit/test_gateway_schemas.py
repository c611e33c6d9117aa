"""Request schema and template validation messages of the gateway."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from palette.common.pricing import load_pricing
from palette.gateway.problems import Problem, errors_from_pydantic
from palette.gateway.schemas import CreateJob, CreateTemplate
from palette.gateway.templating import check_template

pytestmark = pytest.mark.unit

MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"
JOB: dict[str, Any] = {
    "template_id": "t1",
    "seed_key": "seed-data/alice/s.jsonl",
    "num_records": 10,
    "budget_usd": "2.5",
    "output_format": "jsonl",
}


def _errors(model: type[CreateJob | CreateTemplate], body: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as info:
        model.model_validate(body)
    return {e["field"]: e["problem"] for e in errors_from_pydantic(info.value)}


class TestCreateJobSchema:
    def test_accepts_a_complete_body(self) -> None:
        job = CreateJob.model_validate({**JOB, "partition_size": 100, "template_version": 2})
        assert job.budget_usd == Decimal("2.5")
        assert job.priority == 0

    @pytest.mark.parametrize(
        ("num_records", "problem"),
        [
            (0, "Input should be greater than or equal to 1"),
            (-1, "Input should be greater than or equal to 1"),
            (1_000_001, "Input should be less than or equal to 1000000"),
        ],
    )
    def test_num_records_out_of_range(self, num_records: int, problem: str) -> None:
        assert _errors(CreateJob, {**JOB, "num_records": num_records}) == {"num_records": problem}

    @pytest.mark.parametrize("budget", [0, -1, "0", "-0.01"])
    def test_budget_must_be_positive(self, budget: object) -> None:
        assert _errors(CreateJob, {**JOB, "budget_usd": budget}) == {
            "budget_usd": "Input should be greater than 0"
        }

    def test_budget_finer_than_a_picodollar_is_refused(self) -> None:
        errors = _errors(CreateJob, {**JOB, "budget_usd": "0.0000000000001"})
        assert "budget_usd" in errors

    def test_unknown_fields_are_refused(self) -> None:
        assert _errors(CreateJob, {**JOB, "colour": "red"}) == {
            "colour": "Extra inputs are not permitted"
        }

    def test_output_format_must_be_known(self) -> None:
        errors = _errors(CreateJob, {**JOB, "output_format": "xml"})
        assert errors == {"output_format": "Input should be 'jsonl', 'parquet' or 'csv'"}

    def test_missing_fields_are_named(self) -> None:
        errors = _errors(CreateJob, {"num_records": 1})
        assert set(errors) == {"template_id", "seed_key", "budget_usd", "output_format"}
        assert set(errors.values()) == {"Field required"}


class TestCreateTemplateSchema:
    def test_step_fields_are_checked_with_their_index(self) -> None:
        body = {"name": "t", "steps": [{"id": "a", "model": MODEL, "prompt": "x", "oops": 1}]}
        assert _errors(CreateTemplate, body) == {"steps[0].oops": "Extra inputs are not permitted"}

    def test_step_ids_must_be_identifiers(self) -> None:
        body = {"name": "t", "steps": [{"id": "1 bad", "model": MODEL, "prompt": "x"}]}
        assert list(_errors(CreateTemplate, body)) == ["steps[0].id"]

    def test_needs_at_least_one_step_and_a_name(self) -> None:
        assert set(_errors(CreateTemplate, {"name": "  ", "steps": []})) == {"name", "steps"}


def _template(*steps: dict[str, Any]) -> CreateTemplate:
    return CreateTemplate.model_validate({"name": "t", "steps": list(steps)})


def _problem(request: CreateTemplate) -> Problem:
    with pytest.raises(Problem) as info:
        check_template(request, load_pricing())
    assert info.value.status_code == 422
    return info.value


class TestCheckTemplate:
    def test_returns_the_seed_fields_it_needs(self) -> None:
        spec, requirements = check_template(
            _template(
                {"id": "q", "model": MODEL, "prompt": "About {{ topic }} for {{ who.name }}"},
                {"id": "a", "model": MODEL, "prompt": "{{ steps.q.output }}"},
            ),
            load_pricing(),
        )
        assert [step.id for step in spec.steps] == ["q", "a"]
        assert requirements == ["topic", "who.name"]

    def test_unknown_model_names_the_step_model(self) -> None:
        problem = _problem(
            _template(
                {"id": "a", "model": MODEL, "prompt": "x"},
                {"id": "b", "model": "acme.unpriced", "prompt": "y"},
            )
        )
        assert [e["field"] for e in problem.errors] == ["steps[1].model"]
        assert "acme.unpriced" in problem.errors[0]["problem"]

    def test_duplicate_step_ids_are_named(self) -> None:
        problem = _problem(
            _template(
                {"id": "a", "model": MODEL, "prompt": "x"},
                {"id": "a", "model": MODEL, "prompt": "y"},
            )
        )
        assert problem.errors[0]["field"] == "steps[1].id"
        assert "duplicate" in problem.errors[0]["problem"]

    def test_reference_to_a_later_step_is_refused(self) -> None:
        problem = _problem(
            _template(
                {"id": "a", "model": MODEL, "prompt": "{{ steps.b.output }}"},
                {"id": "b", "model": MODEL, "prompt": "y"},
            )
        )
        assert problem.errors == [
            {
                "field": "steps[0].prompt",
                "problem": "steps.b.output is not the output of an earlier step",
            }
        ]

    def test_syntax_error_names_the_field_and_line(self) -> None:
        problem = _problem(
            _template({"id": "a", "model": MODEL, "prompt": "ok", "system": "\n{{ x "})
        )
        assert problem.errors[0]["field"] == "steps[0].system"
        assert "line 2" in problem.errors[0]["problem"]
