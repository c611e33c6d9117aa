"""Schemathesis against the OpenAPI document the real gateway serves, with authentication.

Every operation gets 100 generated requests (valid and invalid ones) sent to
the session's gateway process; each response must be no server error and
match the document: a documented status, content type, headers and body
schema, and invalid requests rejected. Each operation runs as its own user,
so the per-user rate limit (default 50/s, bursts of 200) is not what answers.
The count is checked: an operation that takes input (path, query, header or
body) must have been sent at least 100 requests; ``/health`` and ``/ready``
take none, so Hypothesis runs out of distinct requests after a few.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from palette.gateway.app import create_app
from palette.gateway.bearer_tokens import mint
from palette.gateway.settings import GatewaySettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120, method="signal")]

EXAMPLES = 100
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def gateway_document() -> dict[str, Any]:
    """The OpenAPI document of the gateway's code (what the process serves, checked below)."""
    document: dict[str, Any] = create_app(GatewaySettings()).openapi_schema.to_schema()
    return document


# Loaded at import so pytest gets one test per operation (schemathesis' lazy
# fixture loader does not run on pytest 9); TestServedDocument proves that the
# running gateway serves exactly this document.
schema = schemathesis.openapi.from_dict(gateway_document())
# Unknown query parameters are ignored, as usual for REST APIs: not a negative case here.
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    max_examples=EXAMPLES,
    allow_extra_parameters=False,
    no_shrink=True,
    with_security_parameters=False,  # the test sends a valid token itself (401s: test_gateway_jwt)
)
_users: dict[str, str] = {}


def takes_input(operation: Any) -> bool:
    """Whether a request of the operation has anything to vary (the token aside)."""
    headers = [h for h in operation.headers if h.name.lower() != "authorization"]
    parts = (operation.path_parameters, operation.query, operation.body, headers)
    return any(len(part) for part in parts)


@pytest.fixture
def sent() -> Iterator[list[Any]]:
    """The cases one operation's test sent: at least EXAMPLES when it takes input."""
    cases: list[Any] = []
    yield cases
    assert cases, "no request was sent"
    operation = cases[0].operation
    if takes_input(operation):
        assert len(cases) >= EXAMPLES, f"{operation.label}: only {len(cases)} requests"


class TestServedDocument:
    def test_the_gateway_serves_the_document_under_test(self, gateway_url: str) -> None:
        served = httpx.get(f"{gateway_url}/schema/openapi.json", timeout=10)
        assert served.status_code == 200
        assert served.json() == json.loads(json.dumps(gateway_document(), default=str))


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    phases=[Phase.explicit, Phase.generate],  # report a failure as found, no shrinking
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_every_operation_conforms_to_the_served_document(
    case: Any, gateway_url: str, jwt_secret: str, sent: list[Any]
) -> None:
    sent.append(case)
    user = _users.setdefault(case.operation.label, f"st-{uuid.uuid4().hex[:10]}")
    token = mint(user, jwt_secret)
    case.call_and_validate(
        base_url=gateway_url,
        headers={"Authorization": f"Bearer {token}"},
        checks=CHECKS,
        timeout=30,
    )
