"""``/auth``: how the page signs in (OIDC settings) and the dev sign-in.

The dev sign-in mints a bearer token for any user name, so it answers only
in dev mode: HS256 tokens on a gateway that listens on a loopback address
(where ``palette-token`` mints the same tokens). Everywhere else it is a 403
problem that says why.
"""

from __future__ import annotations

from datetime import timedelta

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody
from litestar.status_codes import HTTP_201_CREATED

from palette.common.messages import utcnow
from palette.gateway.auth import is_loopback
from palette.gateway.bearer_tokens import mint
from palette.gateway.openapi import problems
from palette.gateway.ports import GatewayRuntime
from palette.gateway.problems import Problem, field_error
from palette.gateway.schemas.session import DevSignIn, DevToken, OidcConfig, SignInConfig
from palette.gateway.settings import GatewaySettings


def dev_sign_in_refused(settings: GatewaySettings) -> str | None:
    """Why this gateway mints no dev tokens, or None when it does (dev mode)."""
    if settings.jwks_mode:
        return (
            "the gateway verifies tokens of an identity provider (JWKS mode): "
            "sign in with it instead"
        )
    if not is_loopback(settings.host):
        return (
            f"the gateway listens on {settings.host}, not a loopback address: dev sign-in "
            "works only in dev mode on one machine"
        )
    if not settings.dev_sign_in:
        return "the dev sign-in is turned off (PALETTE_GATEWAY_DEV_SIGN_IN=false)"
    return None


def sign_in_config(settings: GatewaySettings) -> SignInConfig:
    """The ways to sign in that ``settings`` allow."""
    refused = dev_sign_in_refused(settings)
    oidc = None
    if settings.oidc_client_id and settings.jwt_issuer:
        oidc = OidcConfig(
            issuer=settings.jwt_issuer,
            client_id=settings.oidc_client_id,
            scope=settings.oidc_scope,
            audience=settings.jwt_audience,
        )
    return SignInConfig(
        mode="jwks" if settings.jwks_mode else "hs256",
        dev_sign_in=refused is None,
        dev_sign_in_refused=refused,
        oidc=oidc,
    )


class SessionController(Controller):
    """Signing in; no token needed."""

    path = "/auth"
    tags = ["auth"]
    opt = {"exclude_from_auth": True}
    security = [{}]

    @get("/config", operation_id="getSignInConfig", summary="How to sign in to this gateway")
    async def config(self, runtime: NamedDependency[GatewayRuntime]) -> SignInConfig:
        """The identity provider and client id of the page's OIDC sign-in, and the dev mode."""
        return sign_in_config(runtime.settings)

    @post(
        "/dev-token",
        operation_id="devSignIn",
        summary="Dev mode only: a bearer token for a user name",
        status_code=HTTP_201_CREATED,
        responses=problems(403),
    )
    async def dev_token(
        self, data: JSONBody[DevSignIn], runtime: NamedDependency[GatewayRuntime]
    ) -> DevToken:
        """Mint an HS256 token for ``user`` as ``palette-token --sub`` does.

        403 unless the gateway is in dev mode (HS256 tokens, listening on a
        loopback address, ``dev_sign_in`` on).
        """
        settings = runtime.settings
        refused = dev_sign_in_refused(settings)
        if refused is not None:
            raise Problem(
                403,
                f"dev sign-in refused: {refused}",
                errors=[field_error("user", refused)],
                slug="dev-sign-in-refused",
            )
        seconds = settings.dev_token_seconds
        token = mint(
            data.user,
            settings.jwt_secret.get_secret_value(),
            ttl_seconds=seconds,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
        return DevToken(
            token=token, user=data.user, expires_at=utcnow() + timedelta(seconds=seconds)
        )
