"""OpenAPI documentation of the gateway's problem responses."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from litestar.openapi.datastructures import ResponseSpec

from palette.gateway.problems import MEDIA_TYPE
from palette.gateway.schemas import ProblemDetails

ALWAYS = (400, 401, 422, 429, 503)
"""Every authenticated route may answer these: bad input, no token, rate limit, outage."""


def problems(*statuses: int, extra: dict[int, ResponseSpec] | None = None) -> dict[int, Any]:
    """Response specs of the problem statuses a route may answer (``ALWAYS`` included)."""
    specs: dict[int, Any] = {
        status: ResponseSpec(
            data_container=ProblemDetails,
            description=HTTPStatus(status).phrase,
            media_type=MEDIA_TYPE,
            generate_examples=False,
        )
        for status in sorted({*ALWAYS, *statuses})
    }
    specs.update(extra or {})
    return specs


def reply(data: type[Any], description: str) -> ResponseSpec:
    """A JSON success response other than the route's default one."""
    return ResponseSpec(data_container=data, description=description, generate_examples=False)
