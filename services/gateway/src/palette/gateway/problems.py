"""RFC 9457 problem details for every error the gateway answers.

Each body has ``type``, ``title``, ``status``, ``detail``, ``instance`` and an
``errors`` list; each error names the invalid ``field`` and its ``problem``
(plus extra keys such as ``line`` or ``record`` where they help).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from pydantic import ValidationError
from pydantic_core import ErrorDetails

log = structlog.get_logger("palette.gateway")

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "urn:plot-palette:problem:"

FieldError = dict[str, Any]

_SLUGS = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    412: "precondition-failed",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "too-many-requests",
    500: "internal-error",
    503: "service-unavailable",
}


class Problem(HTTPException):
    """An HTTP error answered as problem details.

    Args:
        status: HTTP status code.
        detail: Human-readable explanation of this occurrence.
        errors: One entry per invalid field: ``{"field": ..., "problem": ...}``.
        slug: Problem type slug; defaults to one derived from the status.
        headers: Extra response headers.
        extensions: Extension members of the body (RFC 9457 section 3.2).
    """

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        errors: Sequence[FieldError] = (),
        slug: str | None = None,
        headers: Mapping[str, str] | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail=detail, status_code=status, headers=dict(headers or {}))
        self.errors = [dict(error) for error in errors]
        self.slug = slug
        self.extensions = dict(extensions or {})


def field_error(field: str, problem: str, **extra: Any) -> FieldError:
    """One entry of a problem's ``errors`` list."""
    return {"field": field, "problem": problem, **extra}


def invalid(field: str, problem: str, *, status: int = 422, **extra: Any) -> Problem:
    """A problem about a single field."""
    return Problem(status, f"{field}: {problem}", errors=[field_error(field, problem, **extra)])


def not_found(field: str, problem: str) -> Problem:
    """A 404 naming what was not found."""
    return Problem(404, problem, errors=[field_error(field, problem)])


_INDEX = re.compile(r"\.(\d+)(?=\.|$)")
_NO_PATH = re.compile(r" - at `\$\[\.\.\.\]`$")
"""msgspec's ending of a decoding error it cannot place (``Number out of range - at `$[...]```)."""


def field_path(location: str | Sequence[str | int]) -> str:
    """A JSON path as the API names fields: ``steps.0.id`` becomes ``steps[0].id``."""
    if not isinstance(location, str):
        text = ""
        for part in location:
            text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
        return text or "body"
    if not location:
        return "body"
    return _INDEX.sub(r"[\1]", location)


def _pydantic_message(error: ErrorDetails) -> str:
    message = error["msg"]
    return message.removeprefix("Value error, ")


def errors_from_pydantic(
    exc: ValidationError, prefix: Sequence[str | int] = ()
) -> list[FieldError]:
    """The ``errors`` list of a pydantic validation error."""
    return [
        field_error(field_path([*prefix, *error["loc"]]), _pydantic_message(error))
        for error in exc.errors()
    ]


def errors_from_litestar(extra: Any) -> list[FieldError]:
    """The ``errors`` list of Litestar's ``ValidationException.extra``."""
    if not isinstance(extra, list):
        return [field_error("body", str(extra))] if extra else []
    errors = []
    for item in extra:
        if isinstance(item, Mapping):
            key = str(item.get("key") or "")
            message = str(item.get("message", "invalid value")).removeprefix("Value error, ")
            errors.append(field_error(field_path(key), message))
        else:
            errors.append(field_error("body", str(item)))
    return errors


def problem_body(
    status: int,
    detail: str,
    *,
    errors: Sequence[FieldError] = (),
    slug: str | None = None,
    instance: str | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON object of a problem details response (extensions never replace a member)."""
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    body: dict[str, Any] = {
        "type": TYPE_BASE + (slug or _SLUGS.get(status, f"http-{status}")),
        "title": title,
        "status": status,
        "detail": detail or title,
    }
    if instance:
        body["instance"] = instance
    body["errors"] = list(errors)
    for key, value in (extensions or {}).items():
        body.setdefault(key, value)
    return body


def problem_response(
    status: int,
    detail: str,
    *,
    errors: Sequence[FieldError] = (),
    slug: str | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
    extensions: Mapping[str, Any] | None = None,
) -> Response[bytes]:
    """A response with an ``application/problem+json`` body."""
    body = problem_body(
        status, detail, errors=errors, slug=slug, instance=instance, extensions=extensions
    )
    return Response(
        content=json.dumps(body, default=str).encode(),
        status_code=status,
        media_type=MEDIA_TYPE,
        headers=dict(headers or {}),
    )


def _from_http_exception(
    exc: HTTPException, instance: str, limit: int | None = None
) -> Response[bytes]:
    status = exc.status_code
    headers = dict(exc.headers or {})
    if isinstance(exc, Problem):
        return problem_response(
            status,
            exc.detail,
            errors=exc.errors,
            slug=exc.slug,
            instance=instance,
            headers=headers,
            extensions=exc.extensions,
        )
    if isinstance(exc, ValidationException):
        errors = errors_from_litestar(exc.extra)
        problems = "; ".join(f"{e['field']}: {e['problem']}" for e in errors[:5])
        detail = f"invalid request: {problems}" if problems else "invalid request"
        return problem_response(422, detail, errors=errors, instance=instance, headers=headers)
    detail = exc.detail
    errors = []
    if status == 404 and detail == "Not Found":
        detail = "no such resource"
    elif status == 405:
        detail = "the method is not allowed on this resource"
    elif status == 400:
        detail = _NO_PATH.sub("", detail)
        errors = [field_error("body", detail)]
    elif status == 413:
        accepts = f"the {limit} bytes " if limit else ""
        detail = f"the request body is larger than {accepts}this endpoint accepts"
        errors = [field_error("body", detail)]
    return problem_response(status, detail, errors=errors, instance=instance, headers=headers)


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[bytes]:
    """Litestar exception handler: every error becomes problem details."""
    instance = request.url.path
    if isinstance(exc, HTTPException):
        if exc.status_code >= 500 and not isinstance(exc, Problem):
            log.error("request_failed", path=instance, status=exc.status_code, error=exc.detail)
        limit = None
        if exc.status_code == 413:
            with contextlib.suppress(Exception):
                limit = request.route_handler.resolve_request_max_body_size()
        return _from_http_exception(exc, instance, limit)
    if isinstance(exc, RecursionError):  # msgspec decoding a body nested thousands deep
        detail = "the request body is nested too deeply to be read"
        return problem_response(
            400, detail, errors=[field_error("body", detail)], instance=instance
        )
    if _is_unavailable(exc):
        log.warning("dependency_unavailable", path=instance, error=repr(exc))
        return problem_response(
            503,
            "a dependency of the gateway is unavailable; try again shortly",
            instance=instance,
            headers={"Retry-After": "5"},
        )
    log.exception("unhandled_error", path=instance)
    return problem_response(500, "internal error", instance=instance)


def _is_unavailable(exc: Exception) -> bool:
    from botocore.exceptions import ConnectionError as BotoConnectionError
    from pymongo.errors import AutoReconnect, ConnectionFailure, ServerSelectionTimeoutError

    return isinstance(
        exc,
        AutoReconnect
        | ConnectionFailure
        | ServerSelectionTimeoutError
        | BotoConnectionError
        | ConnectionError  # the broker (BrokerUnavailableError, a lost connection)
        | TimeoutError,  # a publish the broker did not confirm in time
    )
