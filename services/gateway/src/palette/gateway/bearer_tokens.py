"""Bearer tokens: JWTs whose ``sub`` is the user that owns resources.

``decode_claims`` is the one place claims are checked (``exp`` and ``sub``
required, issuer and audience when configured, ``nbf``/``iat`` when present)
under one pinned algorithm. ``verify`` is development mode: HS256 with a shared
secret; production verifies against the identity provider's JWKS
(``palette.gateway.jwks``). ``main`` is the console script
``palette-token``, which mints a development token with the configured secret.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jwt

ALGORITHM = "HS256"
SUBJECT = re.compile(r"^[A-Za-z0-9._:@-]{1,200}$")
"""A ``sub`` must be usable as an owner id (it becomes part of S3 keys)."""


class TokenError(Exception):
    """A bearer token that is missing, malformed, expired or not ours."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    sub: str
    claims: Mapping[str, Any]


def mint(
    sub: str,
    secret: str,
    *,
    ttl_seconds: int = 3600,
    issuer: str | None = None,
    audience: str | None = None,
    now: float | None = None,
) -> str:
    """Sign a token for ``sub`` that expires ``ttl_seconds`` from now."""
    if not SUBJECT.match(sub):
        raise ValueError("sub may only hold letters, digits and . _ : @ - (1..200 characters)")
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"sub": sub, "iat": issued, "exp": issued + ttl_seconds}
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_claims(
    token: str,
    key: Any,
    algorithm: str,
    *,
    issuer: str | None = None,
    audience: str | None = None,
    leeway_seconds: int = 0,
) -> Principal:
    """Verify a token's signature with ``key`` under one pinned algorithm, then its claims.

    ``exp`` and ``sub`` are always required, ``iss`` and ``aud`` when configured;
    ``nbf`` and ``iat`` are checked when present.

    Raises:
        TokenError: for a bad signature, a claim that does not hold, or a bad subject.
    """
    required = ["exp", "sub"] + (["iss"] if issuer else []) + (["aud"] if audience else [])
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            issuer=issuer,
            audience=audience,
            leeway=leeway_seconds,
            options={"require": required, "verify_signature": True},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("token has expired") from exc
    except jwt.ImmatureSignatureError as exc:
        raise TokenError("token is not valid yet (nbf)") from exc
    except jwt.MissingRequiredClaimError as exc:
        raise TokenError(f"token lacks the required {exc.claim!r} claim") from exc
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"invalid token: {exc}") from exc
    sub = claims.get("sub")
    if not isinstance(sub, str) or not SUBJECT.match(sub):
        raise TokenError("token subject is not a valid user id")
    return Principal(sub=sub, claims=claims)


def unverified_header(token: str) -> dict[str, Any]:
    """The token's header, read without verifying anything.

    Raises:
        TokenError: when the token is not a JWS at all.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.InvalidTokenError as exc:
        raise TokenError(f"invalid token: {exc}") from exc
    return dict(header)


def verify(
    token: str,
    secret: str,
    *,
    issuer: str | None = None,
    audience: str | None = None,
    leeway_seconds: int = 0,
) -> Principal:
    """Check a development token's signature (HS256 only) and claims; return its principal.

    Raises:
        TokenError: for any token that is not a valid, unexpired HS256 token of ours.
    """
    if unverified_header(token).get("alg") != ALGORITHM:
        raise TokenError(f"token algorithm must be {ALGORITHM}")
    return decode_claims(
        token,
        secret,
        ALGORITHM,
        issuer=issuer,
        audience=audience,
        leeway_seconds=leeway_seconds,
    )


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value."""
    if not authorization:
        raise TokenError("missing bearer token (Authorization: Bearer <token>)")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise TokenError("authorization must use the Bearer scheme")
    return token.strip()


def main(argv: Sequence[str] | None = None) -> int:
    """Console script ``palette-token``: print a dev token for a user."""
    from palette.gateway.settings import GatewaySettings

    parser = argparse.ArgumentParser(
        prog="palette-token",
        description="Mint an HS256 bearer token with the gateway's configured (dev) secret.",
    )
    parser.add_argument("--sub", required=True, help="user id the token authenticates")
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds (3600)")
    args = parser.parse_args(argv)
    if args.ttl <= 0:
        parser.error("--ttl must be positive")
    settings = GatewaySettings()
    try:
        token = mint(
            args.sub,
            settings.jwt_secret.get_secret_value(),
            ttl_seconds=args.ttl,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    except ValueError as exc:
        parser.error(str(exc))
    sys.stdout.write(token + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
