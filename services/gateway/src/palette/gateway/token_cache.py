"""Bearer tokens verified a moment ago, answered without verifying them again.

A client sends the same token with every request: a page polling a job, a
script reading pages. Verifying it (decoding, HMAC or RSA signature, claims)
cost about 40 us of the gateway's CPU per request, several times what the
shared job read that answers the request costs. ``VerifiedTokens`` keeps the
principal of a token that verified for ``seconds`` (60 by default), never past
the moment the token itself stops being valid (``exp`` plus the leeway the
verifier allows), and only for tokens that verified: a bad token is verified
(and refused) every time. In JWKS mode a key removed from the identity
provider's set is honoured within the set's own cache time anyway
(``jwt_jwks_cache_seconds``, 300 s by default), which bounds the 60 s here.

Pure logic; the clock (wall-clock seconds, like ``exp``) is injectable.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from cachetools import LRUCache

from palette.gateway.bearer_tokens import Principal

KEEP_SECONDS = 60.0
MAX_TOKENS = 10_000


class TokenVerifier(Protocol):
    """Turns a bearer token into the principal it authenticates (``auth.Verifier``)."""

    async def verify(self, token: str) -> Principal:
        """The principal, or TokenError."""
        ...


class VerifiedTokens:
    """A verifier that remembers the tokens it verified, each until it would expire."""

    def __init__(
        self,
        verifier: TokenVerifier,
        *,
        leeway_seconds: float = 0.0,
        seconds: float = KEEP_SECONDS,
        max_tokens: int = MAX_TOKENS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._verifier = verifier
        self._leeway = leeway_seconds
        self._seconds = seconds
        self._clock = clock
        # token -> (valid until, principal); the least recently used go beyond the bound
        self._kept: LRUCache[str, tuple[float, Principal]] = LRUCache(max_tokens)

    async def verify(self, token: str) -> Principal:
        """The principal of ``token``: kept, or verified now (TokenError as the verifier's)."""
        now = self._clock()
        kept = self._kept.get(token)
        if kept is not None:
            if now < kept[0]:
                return kept[1]
            del self._kept[token]
        principal = await self._verifier.verify(token)
        until = now + self._seconds
        expires = principal.claims.get("exp")
        if isinstance(expires, int | float):
            until = min(until, float(expires) + self._leeway)
        if until > now:
            self._kept[token] = (until, principal)
        return principal
