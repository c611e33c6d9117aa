"""Shared bases of the API's request and response bodies, health and problem details."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
PosInt = Annotated[int, Field(ge=1, le=2**53)]
VersionNumber = Annotated[int, Field(ge=1, le=1_000_000_000, description="A template version.")]
Cursor = Annotated[
    str | None,
    Field(description="Pass as `cursor` to get the next page; null on the last page."),
]


class Request(BaseModel):
    """Base of request bodies: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Reply(BaseModel):
    """Base of response bodies."""

    model_config = ConfigDict(frozen=True)


class Health(Reply):
    """Answer of ``GET /health`` and ``GET /ready``."""

    status: str
    checks: dict[str, Any] = Field(default_factory=dict)


class FieldProblem(Reply):
    """One invalid field of a problem (extra keys such as `line` or `record` may follow)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    field: str
    problem: str


class ProblemDetails(Reply):
    """An RFC 9457 problem (`application/problem+json`)."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldProblem]
