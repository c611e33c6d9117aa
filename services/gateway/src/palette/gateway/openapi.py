"""OpenAPI documentation of the gateway's problem responses."""

from __future__ import annotations

from http import HTTPStatus

from litestar.openapi.datastructures import ResponseSpec

from palette.gateway.problems import MEDIA_TYPE
from palette.gateway.schemas import ProblemDetails


def problems(*statuses: int) -> dict[int, ResponseSpec]:
    """Response specs of the problem statuses a route may answer (400 and 401 always)."""
    return {
        status: ResponseSpec(
            data_container=ProblemDetails,
            description=HTTPStatus(status).phrase,
            media_type=MEDIA_TYPE,
            generate_examples=False,
        )
        for status in sorted({400, 401, *statuses})
    }
