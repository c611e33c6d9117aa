"""Problem details formatting of the gateway."""

from __future__ import annotations

import json

import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from palette.gateway.problems import (
    MEDIA_TYPE,
    errors_from_litestar,
    errors_from_pydantic,
    field_path,
    problem_body,
    problem_response,
)

pytestmark = pytest.mark.unit


class TestProblemBody:
    def test_has_every_rfc9457_member_and_errors(self) -> None:
        body = problem_body(
            422,
            "num_records: too large",
            errors=[{"field": "num_records", "problem": "too large"}],
            instance="/jobs",
        )
        assert body == {
            "type": "urn:plot-palette:problem:validation-error",
            "title": "Unprocessable Entity",
            "status": 422,
            "detail": "num_records: too large",
            "instance": "/jobs",
            "errors": [{"field": "num_records", "problem": "too large"}],
        }

    def test_extension_members_are_added_but_never_replace_a_member(self) -> None:
        body = problem_body(422, "bad", extensions={"report": {"n": 1}, "status": 200})
        assert (body["report"], body["status"]) == ({"n": 1}, 422)

    def test_an_empty_detail_falls_back_to_the_title(self) -> None:
        body = problem_body(404, "")
        assert body["detail"] == "Not Found"
        assert body["errors"] == []

    def test_a_custom_slug_sets_the_type(self) -> None:
        assert problem_body(422, "x", slug="invalid-seed-file")["type"].endswith(
            ":invalid-seed-file"
        )

    def test_response_is_problem_json(self) -> None:
        response = problem_response(401, "missing token", headers={"WWW-Authenticate": "Bearer"})
        assert response.media_type == MEDIA_TYPE
        assert response.status_code == 401
        assert isinstance(response.content, bytes)
        assert json.loads(response.content)["status"] == 401


class TestFieldPaths:
    @pytest.mark.parametrize(
        ("location", "expected"),
        [
            ("steps.0.id", "steps[0].id"),
            ("steps.10", "steps[10]"),
            ("budget_usd", "budget_usd"),
            ("", "body"),
            (("steps", 2, "model"), "steps[2].model"),
            ((), "body"),
        ],
    )
    def test_formats_indices_in_brackets(
        self, location: str | tuple[str | int, ...], expected: str
    ) -> None:
        assert field_path(location) == expected

    def test_litestar_validation_extra_becomes_field_errors(self) -> None:
        extra = [
            {"message": "Input should be greater than 0", "key": "budget_usd", "source": "body"},
            {"message": "Extra inputs are not permitted", "key": "steps.1.foo"},
            {"message": "Input should be a valid dictionary"},
        ]
        assert errors_from_litestar(extra) == [
            {"field": "budget_usd", "problem": "Input should be greater than 0"},
            {"field": "steps[1].foo", "problem": "Extra inputs are not permitted"},
            {"field": "body", "problem": "Input should be a valid dictionary"},
        ]

    def test_pydantic_errors_name_each_field(self) -> None:
        class Model(BaseModel):
            model_config = ConfigDict(extra="forbid")
            n: int = Field(ge=1)

        with pytest.raises(ValidationError) as info:
            Model.model_validate({"n": 0, "x": 1})
        assert errors_from_pydantic(info.value, prefix=("steps", 3)) == [
            {"field": "steps[3].n", "problem": "Input should be greater than or equal to 1"},
            {"field": "steps[3].x", "problem": "Extra inputs are not permitted"},
        ]
