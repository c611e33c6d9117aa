"""Production bearer tokens: RS256/ES256 JWTs verified against the identity provider's JWKS.

The key is looked up by the token's ``kid`` in the provider's key set
(PyJWT's ``PyJWKClient``: the set is cached for ``jwt_jwks_cache_seconds``, and
an unknown ``kid`` refetches it at most once per ``jwt_jwks_refresh_seconds``,
so random ``kid`` values cannot make the gateway hammer the provider). The
algorithm is pinned three ways: it must be one of ``jwt_algorithms``, match the
key's own ``alg`` when the key names one, and suit the key's type; only then
are the signature and claims checked (``palette.gateway.bearer_tokens.decode_claims``).
"""

from __future__ import annotations

import anyio.to_thread
import structlog
from jwt import PyJWK, PyJWKClient
from jwt.exceptions import PyJWKClientConnectionError, PyJWKClientError

from palette.gateway.bearer_tokens import Principal, TokenError, decode_claims, unverified_header
from palette.gateway.settings import GatewaySettings

log = structlog.get_logger("palette.gateway")

KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


class KeySetUnavailableError(Exception):
    """The identity provider's key set cannot be fetched (and none is cached)."""


def key_fits(key: PyJWK, algorithm: str) -> bool:
    """Whether a JWK may verify a token signed with ``algorithm``.

    The key's algorithm (its ``alg``, else the one its type implies) must be the
    token's, and its type must suit the algorithm's family.
    """
    return key.algorithm_name == algorithm and KEY_TYPES.get(algorithm[:2]) == key.key_type


class JWKSVerifier:
    """Verifies tokens against one JWKS URL with pinned algorithms, issuer and audience."""

    def __init__(self, settings: GatewaySettings) -> None:
        if not settings.jwt_jwks_url:
            raise ValueError("JWKS mode needs jwt_jwks_url")
        self._client = PyJWKClient(
            settings.jwt_jwks_url,
            cache_jwk_set=True,
            lifespan=settings.jwt_jwks_cache_seconds,
            timeout=settings.jwt_jwks_timeout_seconds,
            cooldown_duration=settings.jwt_jwks_refresh_seconds,
        )
        self._algorithms = frozenset(settings.jwt_algorithms)
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_seconds

    def _signing_key(self, kid: str) -> PyJWK:
        try:
            return self._client.get_signing_key(kid)
        except PyJWKClientConnectionError as exc:
            log.warning("jwks_unavailable", error=str(exc))
            raise KeySetUnavailableError(str(exc)) from exc
        except PyJWKClientError as exc:
            raise TokenError(f"unknown signing key {kid!r}") from exc

    async def verify(self, token: str) -> Principal:
        """The principal of a valid token.

        Raises:
            TokenError: the token is not valid (answered 401).
            KeySetUnavailableError: the key set cannot be fetched (answered 503).
        """
        header = unverified_header(token)
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in self._algorithms:
            raise TokenError(f"token algorithm must be one of {sorted(self._algorithms)}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenError("token has no key id (kid)")
        key = await anyio.to_thread.run_sync(self._signing_key, kid)
        if not key_fits(key, algorithm):
            raise TokenError(f"key {kid!r} does not sign with {algorithm}")
        return decode_claims(
            token,
            key.key,
            algorithm,
            issuer=self._issuer,
            audience=self._audience,
            leeway_seconds=self._leeway,
        )
