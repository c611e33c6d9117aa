"""Fixtures of the gateway tests (imported by conftest.py).

``make_api`` gives REST clients of fresh users on the session's gateway (HS256
dev mode, default limits). ``strict_gateway`` is a second gateway process on
the same stack in production auth mode (JWKS served by ``identity_provider``
on 127.0.0.1) with small limits, for the JWT battery and the limit tests.
``tight_gateway`` (clients: ``make_tight_api``) is a third, in dev mode, with
small body limits and short waits for generators: a second replica beside the
session's gateway, the place for size limits and answers that never come.
``budget_gateway`` (clients: ``make_budget_api``) is a fourth, in dev mode, whose
preview budget (``PREVIEW_BUDGET_USD`` a day) holds one ``BUDGET_STEP`` preview
and not two: the place for preview budget tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import pytest

from palette.common.pricing import PricingTable
from palette.devstack import readiness
from palette.devstack.client import GatewayClient
from palette.devstack.services import ServiceGroup, ServiceProcess
from palette.devstack.stack import DevStack
from palette.gateway.bearer_tokens import mint
from tests.integration.identity import AUDIENCE, ISSUER, IdentityProvider
from tests.integration.jobs import MICRO

MakeApi = Callable[..., tuple[str, GatewayClient]]

STRICT_LIMITS = {
    "PALETTE_GATEWAY_RATE_LIMIT_PER_SECOND": "2",
    "PALETTE_GATEWAY_RATE_LIMIT_BURST": "8",
    "PALETTE_GATEWAY_MAX_ACTIVE_JOBS": "2",
    "PALETTE_GATEWAY_MAX_JSON_BODY_BYTES": "65536",
    "PALETTE_GATEWAY_MAX_BODY_BYTES": "131072",
    "PALETTE_GATEWAY_MAX_SEED_UPLOAD_BYTES": "100000",
    "PALETTE_GATEWAY_JWT_LEEWAY_SECONDS": "5",
    "PALETTE_GATEWAY_JWT_JWKS_REFRESH_SECONDS": "30",
}
TIGHT_SETTINGS = {
    "PALETTE_GATEWAY_MAX_JSON_BODY_BYTES": "65536",
    "PALETTE_GATEWAY_MAX_BODY_BYTES": "131072",
    "PALETTE_GATEWAY_MAX_SEED_UPLOAD_BYTES": "100000",
    "PALETTE_GATEWAY_SNAPSHOT_TIMEOUT_SECONDS": "2",
    "PALETTE_GATEWAY_PREVIEW_TIMEOUT_SECONDS": "2",
}

BUDGET_STEP_TOKENS = 400
BUDGET_STEP = {
    "name": "budget-step",
    "steps": [
        {
            "id": "say",
            "model": MICRO,
            "prompt": "Say {{ product }}.",
            "max_tokens": BUDGET_STEP_TOKENS,
        }
    ],
}
# Its worst case is its output at the most (the prompt is a few tokens): a budget of
# 1.5 times that holds one such preview in flight, never two.
PREVIEW_BUDGET_USD = format(
    Decimal(3 * BUDGET_STEP_TOKENS * PricingTable.load().price(MICRO).output_picos) / (2 * 10**12),
    "f",
)


@contextmanager
def clients(url: str, token: Callable[[str], str]) -> Iterator[MakeApi]:
    """A factory of REST clients of ``url``, each a fresh user (or the one named)."""
    made: list[GatewayClient] = []

    def make(user: str | None = None) -> tuple[str, GatewayClient]:
        name = user or f"user-{uuid.uuid4().hex[:10]}"
        client = GatewayClient(url, token(name))
        made.append(client)
        return name, client

    try:
        yield make
    finally:
        for client in made:
            client.close()


@contextmanager
def gateway_process(name: str, env: Mapping[str, str], log_dir: Path) -> Iterator[ServiceProcess]:
    """Another gateway process on the session's stack, stopped on exit."""
    gateway = ServiceProcess("gateway", env, log_dir, name=name)
    gateway.start()
    try:
        gateway.wait_ready(60)
        yield gateway
    finally:
        gateway.stop()


@pytest.fixture(scope="session")
def gateway_url(services: ServiceGroup) -> str:
    """Base URL of the session's gateway (HS256 dev mode, default limits)."""
    return services.gateway_url


@pytest.fixture
def make_api(gateway_url: str, jwt_secret: str) -> Iterator[MakeApi]:
    """A factory of REST clients, each acting as a fresh user: ``make_api() -> (user, client)``."""
    with clients(gateway_url, lambda user: mint(user, jwt_secret)) as make:
        yield make


@pytest.fixture(scope="session")
def identity_provider() -> Iterator[IdentityProvider]:
    """An identity provider's JWKS (one RSA and one EC key) on a local HTTP server."""
    with IdentityProvider() as idp:
        yield idp


@pytest.fixture(scope="session")
def strict_gateway(
    devstack: DevStack,
    services: ServiceGroup,
    identity_provider: IdentityProvider,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceProcess]:
    """A second gateway: JWKS (production) auth and small limits, on the session's stack."""
    env = {
        **devstack.env(),
        **STRICT_LIMITS,
        "PALETTE_GATEWAY_JWT_JWKS_URL": identity_provider.jwks_url,
        "PALETTE_GATEWAY_JWT_ISSUER": ISSUER,
        "PALETTE_GATEWAY_JWT_AUDIENCE": AUDIENCE,
    }
    with gateway_process(
        "gateway-strict", env, tmp_path_factory.mktemp("strict-gateway")
    ) as gateway:
        yield gateway


@pytest.fixture
def strict_api(
    strict_gateway: ServiceProcess, identity_provider: IdentityProvider
) -> Iterator[MakeApi]:
    """Clients of the strict gateway, each a fresh user with a valid RS256 token."""
    with clients(strict_gateway.url, identity_provider.token) as make:
        yield make


@pytest.fixture(scope="session")
def tight_gateway(
    devstack: DevStack, services: ServiceGroup, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """A third gateway (dev mode): small bodies, two-second waits for snapshots and previews."""
    env = {**devstack.env(), **TIGHT_SETTINGS}
    with gateway_process("gateway-tight", env, tmp_path_factory.mktemp("tight-gateway")) as gateway:
        yield gateway


@pytest.fixture
def make_tight_api(tight_gateway: ServiceProcess, jwt_secret: str) -> Iterator[MakeApi]:
    """Clients of the tight gateway; pass a user id to act as a user of the session's gateway."""
    with clients(tight_gateway.url, lambda user: mint(user, jwt_secret)) as make:
        yield make


@pytest.fixture(scope="session")
def budget_gateway(
    devstack: DevStack, services: ServiceGroup, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """A fourth gateway (dev mode) whose preview budget holds one ``BUDGET_STEP`` preview."""
    env = {**devstack.env(), "PALETTE_GATEWAY_PREVIEW_BUDGET_USD": PREVIEW_BUDGET_USD}
    with gateway_process(
        "gateway-budget", env, tmp_path_factory.mktemp("budget-gateway")
    ) as gateway:
        # Its previews need the broker: wait until /ready says it is connected, not
        # only for /health (a preview through a gateway not yet connected answers 503).
        ready = f"{gateway.url}/ready"
        gateway.process.wait_until(lambda: readiness.http_ok(ready), 60.0, "ready")
        yield gateway


@pytest.fixture
def make_budget_api(budget_gateway: ServiceProcess, jwt_secret: str) -> Iterator[MakeApi]:
    """Clients of the budget gateway; pass a user id to act as that user again."""
    with clients(budget_gateway.url, lambda user: mint(user, jwt_secret)) as make:
        yield make
