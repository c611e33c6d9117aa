"""Bodies of ``/auth``: how the page signs in, and the dev sign-in's token."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from palette.gateway.bearer_tokens import SUBJECT
from palette.gateway.schemas.base import Reply, Request


class OidcConfig(Reply):
    """The identity provider the page signs in with (authorization code with PKCE)."""

    issuer: str = Field(description="The issuer whose tokens the gateway trusts (`jwt_issuer`).")
    client_id: str
    scope: str
    audience: str | None = Field(description="The `aud` the gateway requires of access tokens.")


class SignInConfig(Reply):
    """Answer of ``GET /auth/config``: the ways to sign in that this gateway offers."""

    mode: str = Field(description="`jwks` (tokens of an identity provider) or `hs256` (dev).")
    dev_sign_in: bool = Field(
        description="Whether `POST /auth/dev-token` mints tokens (dev mode only)."
    )
    dev_sign_in_refused: str | None = Field(
        None, description="Why the dev sign-in is off, when it is."
    )
    oidc: OidcConfig | None = Field(description="Null when no OIDC client is configured.")


class DevSignIn(Request):
    """Body of ``POST /auth/dev-token``."""

    user: Annotated[
        str,
        Field(
            pattern=SUBJECT.pattern,
            description="The user name the token is for (letters, digits and . _ : @ -).",
        ),
    ]


class DevToken(Reply):
    """A dev bearer token (HS256, signed with the gateway's secret)."""

    token: str
    token_type: str = "Bearer"  # noqa: S105 - the scheme, not a secret
    user: str
    expires_at: datetime
