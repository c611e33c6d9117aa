"""Bearer-token authentication for every route not marked ``exclude_from_auth``.

Development mode verifies HS256 tokens with a shared secret; production mode
(``jwt_jwks_url`` set) verifies RS256/ES256 tokens against the identity
provider's JWKS. Every failure is a 401 problem with an RFC 6750 challenge; a
key set that cannot be fetched is a 503.
"""

from __future__ import annotations

import ipaddress
from typing import Any, Protocol

import structlog
from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp

from palette.gateway.bearer_tokens import Principal, TokenError, bearer_token, verify
from palette.gateway.jwks import JWKSVerifier, KeySetUnavailableError
from palette.gateway.problems import Problem, field_error
from palette.gateway.settings import DEV_JWT_SECRET, GatewaySettings

log = structlog.get_logger("palette.gateway")

EXCLUDE_OPT = "exclude_from_auth"


class Verifier(Protocol):
    """Turns a bearer token into the principal it authenticates."""

    async def verify(self, token: str) -> Principal:
        """The principal, or TokenError."""
        ...


class HS256Verifier:
    """Development mode: HS256 tokens signed with the configured secret."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._secret = settings.jwt_secret.get_secret_value()
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_seconds

    async def verify(self, token: str) -> Principal:
        """The principal of a valid HS256 token."""
        return verify(
            token,
            self._secret,
            issuer=self._issuer,
            audience=self._audience,
            leeway_seconds=self._leeway,
        )


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to any interface


def insecure_start(settings: GatewaySettings) -> str | None:
    """Why the gateway must not start: the public dev secret on a non-loopback address.

    Returns:
        One line naming the settings to set, or None when the gateway may start.
    """
    if settings.jwks_mode or settings.jwt_secret.get_secret_value() != DEV_JWT_SECRET:
        return None
    if is_loopback(settings.host):
        return None
    return (
        f"refusing to listen on {settings.host} with the public development JWT secret: "
        "set PALETTE_GATEWAY_JWT_SECRET to a long random secret (e.g. openssl rand -hex 32), "
        "or PALETTE_GATEWAY_JWT_JWKS_URL with PALETTE_GATEWAY_JWT_ISSUER and "
        "PALETTE_GATEWAY_JWT_AUDIENCE, or PALETTE_GATEWAY_HOST=127.0.0.1"
    )


def make_verifier(settings: GatewaySettings) -> Verifier:
    """The verifier of the configured mode (JWKS when ``jwt_jwks_url`` is set)."""
    if settings.jwks_mode:
        log.info("auth_mode", mode="jwks", jwks_url=settings.jwt_jwks_url)
        return JWKSVerifier(settings)
    if settings.jwt_secret.get_secret_value() == DEV_JWT_SECRET:
        log.warning("auth_mode", mode="hs256", note="DEV-ONLY default secret; never in production")
    return HS256Verifier(settings)


def unauthorized(problem: str, *, invalid_token: bool) -> Problem:
    """A 401 problem with the RFC 6750 challenge header."""
    challenge = 'Bearer realm="plot-palette"'
    if invalid_token:
        description = problem.replace('"', "'")
        challenge += f', error="invalid_token", error_description="{description}"'
    return Problem(
        401,
        problem,
        errors=[field_error("Authorization", problem)],
        headers={"WWW-Authenticate": challenge},
    )


class JWTAuthMiddleware(AbstractAuthenticationMiddleware):
    """Verifies the bearer token; the request's user becomes a ``Principal``."""

    def __init__(self, app: ASGIApp, verifier: Verifier, **kwargs: Any) -> None:
        super().__init__(app, exclude_from_auth_key=EXCLUDE_OPT, **kwargs)
        self._verifier = verifier

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        """Verify the ``Authorization`` header.

        Raises:
            Problem: 401 when the token is missing or invalid, 503 when the
                identity provider's keys cannot be fetched.
        """
        header = connection.headers.get("authorization")
        try:
            token = bearer_token(header)
        except TokenError as exc:
            raise unauthorized(str(exc), invalid_token=False) from None
        try:
            principal = await self._verifier.verify(token)
        except TokenError as exc:
            raise unauthorized(str(exc), invalid_token=True) from None
        except KeySetUnavailableError:
            raise Problem(
                503,
                "the identity provider's signing keys cannot be fetched; try again shortly",
                headers={"Retry-After": "5"},
            ) from None
        return AuthenticationResult(user=principal, auth=token)


def current_owner(request: ASGIConnection[Any, Any, Any, Any]) -> str:
    """Dependency: the authenticated user's id (the token's ``sub``)."""
    user = request.scope.get("user")
    if not isinstance(user, Principal):
        raise unauthorized("missing bearer token", invalid_token=False)
    return user.sub
