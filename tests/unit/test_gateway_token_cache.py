"""Bearer tokens verified a moment ago: the gateway's VerifiedTokens."""

from __future__ import annotations

import time
from typing import Any

import pytest

from palette.gateway.bearer_tokens import Principal, TokenError, mint, verify
from palette.gateway.token_cache import VerifiedTokens
from tests.unit.gateway_fakes import ManualClock

pytestmark = pytest.mark.unit

SECRET = "unit-test-secret-that-is-long-enough-for-hs256-0123456789"


class CountingVerifier:
    """Verifies HS256 tokens at the clock's time, counting the verifications."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.calls = 0

    async def verify(self, token: str) -> Principal:
        self.calls += 1
        principal = verify(token, SECRET)
        if principal.claims["exp"] <= self.clock():
            raise TokenError("token has expired")
        return principal


def _setup(**kwargs: Any) -> tuple[ManualClock, CountingVerifier, VerifiedTokens]:
    clock = ManualClock()
    clock.now = time.time()
    inner = CountingVerifier(clock)
    return clock, inner, VerifiedTokens(inner, clock=clock, **kwargs)


class TestVerifiedTokens:
    async def test_a_verified_token_is_answered_without_verifying_again(self) -> None:
        clock, inner, tokens = _setup(seconds=60)
        token = mint("alice", SECRET, ttl_seconds=3600, now=clock.now)
        first = await tokens.verify(token)
        clock.now += 59
        assert await tokens.verify(token) == first
        assert inner.calls == 1

    async def test_a_kept_token_is_verified_again_after_the_keep_time(self) -> None:
        clock, inner, tokens = _setup(seconds=60)
        token = mint("alice", SECRET, ttl_seconds=3600, now=clock.now)
        await tokens.verify(token)
        clock.now += 60
        assert (await tokens.verify(token)).sub == "alice"
        assert inner.calls == 2

    async def test_a_token_is_never_answered_past_its_expiry(self) -> None:
        clock, inner, tokens = _setup(seconds=60)
        token = mint("alice", SECRET, ttl_seconds=10, now=clock.now)
        await tokens.verify(token)
        clock.now += 10
        with pytest.raises(TokenError, match="expired"):
            await tokens.verify(token)
        assert inner.calls == 2

    async def test_the_leeway_extends_a_kept_token_as_the_verifier_would(self) -> None:
        clock, inner, tokens = _setup(seconds=60, leeway_seconds=5)
        token = mint("alice", SECRET, ttl_seconds=10, now=clock.now)
        await tokens.verify(token)
        clock.now += 14
        assert (await tokens.verify(token)).sub == "alice"
        assert inner.calls == 1

    async def test_a_refused_token_is_verified_every_time(self) -> None:
        _, inner, tokens = _setup()
        for _ in range(2):
            with pytest.raises(TokenError):
                await tokens.verify("not-a-token")
        assert inner.calls == 2

    async def test_tokens_beyond_the_bound_are_verified_again(self) -> None:
        clock, inner, tokens = _setup(max_tokens=1)
        alice = mint("alice", SECRET, now=clock.now)
        bob = mint("bob", SECRET, now=clock.now)
        await tokens.verify(alice)
        await tokens.verify(bob)
        assert (await tokens.verify(alice)).sub == "alice"
        assert inner.calls == 3
