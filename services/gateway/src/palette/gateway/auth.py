"""Bearer-token authentication for every route not marked ``exclude_from_auth``."""

from __future__ import annotations

from typing import Any

from litestar.connection import ASGIConnection
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.types import ASGIApp

from palette.gateway.problems import Problem, field_error
from palette.gateway.settings import GatewaySettings
from palette.gateway.tokens import Principal, TokenError, bearer_token, verify

EXCLUDE_OPT = "exclude_from_auth"


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

    def __init__(self, app: ASGIApp, settings: GatewaySettings, **kwargs: Any) -> None:
        super().__init__(app, exclude_from_auth_key=EXCLUDE_OPT, **kwargs)
        self._secret = settings.jwt_secret.get_secret_value()
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_seconds

    async def authenticate_request(
        self, connection: ASGIConnection[Any, Any, Any, Any]
    ) -> AuthenticationResult:
        """Verify the ``Authorization`` header.

        Raises:
            Problem: 401 when the token is missing or invalid.
        """
        header = connection.headers.get("authorization")
        try:
            token = bearer_token(header)
        except TokenError as exc:
            raise unauthorized(str(exc), invalid_token=False) from None
        try:
            principal = verify(
                token,
                self._secret,
                issuer=self._issuer,
                audience=self._audience,
                leeway_seconds=self._leeway,
            )
        except TokenError as exc:
            raise unauthorized(str(exc), invalid_token=True) from None
        return AuthenticationResult(user=principal, auth=token)


def current_owner(request: ASGIConnection[Any, Any, Any, Any]) -> str:
    """Dependency: the authenticated user's id (the token's ``sub``)."""
    user = request.scope.get("user")
    if not isinstance(user, Principal):
        raise unauthorized("missing bearer token", invalid_token=False)
    return user.sub
