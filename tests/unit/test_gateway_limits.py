"""The per-user rate limit and per-user locks of the gateway (pure logic)."""

from __future__ import annotations

import asyncio

import pytest

from palette.gateway.limits import OwnerLocks, RateLimiter
from tests.unit.gateway_fakes import ManualClock as Clock

pytestmark = pytest.mark.unit


class TestRateLimiter:
    def test_allows_a_burst_then_answers_how_long_to_wait(self) -> None:
        clock = Clock()
        limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
        assert [limiter.take("alice") for _ in range(3)] == [0.0, 0.0, 0.0]
        assert limiter.take("alice") == pytest.approx(0.5)

    def test_refills_at_the_rate_up_to_the_burst(self) -> None:
        clock = Clock()
        limiter = RateLimiter(rate=2.0, burst=3, clock=clock)
        for _ in range(3):
            limiter.take("alice")
        clock.now += 1.0  # two requests' worth
        assert limiter.take("alice") == 0.0
        assert limiter.take("alice") == 0.0
        assert limiter.take("alice") > 0
        clock.now += 3600
        assert [limiter.take("alice") for _ in range(3)] == [0.0, 0.0, 0.0]
        assert limiter.take("alice") > 0

    def test_each_user_has_a_bucket_of_their_own(self) -> None:
        limiter = RateLimiter(rate=1.0, burst=1, clock=Clock())
        assert limiter.take("alice") == 0.0
        assert limiter.take("alice") > 0
        assert limiter.take("bob") == 0.0

    def test_forgets_the_least_recently_seen_users_beyond_its_bound(self) -> None:
        limiter = RateLimiter(rate=1.0, burst=1, clock=Clock(), max_buckets=2)
        limiter.take("alice")
        limiter.take("bob")
        limiter.take("carol")  # alice's bucket is dropped: she starts full again
        assert limiter.take("alice") == 0.0

    def test_describes_its_limit(self) -> None:
        assert "50 requests per second" in RateLimiter(50, 200).describe()


class TestOwnerLocks:
    def test_serializes_one_users_blocks_and_not_two_users(self) -> None:
        locks = OwnerLocks()
        order: list[str] = []

        async def hold(owner: str, tag: str) -> None:
            async with locks.hold(owner):
                order.append(f"{tag}+")
                await asyncio.sleep(0.01)
                order.append(f"{tag}-")

        async def main() -> None:
            await asyncio.gather(hold("a", "a1"), hold("a", "a2"), hold("b", "b1"))

        asyncio.run(main())
        assert order.index("a1-") < order.index("a2+")
        assert order.index("b1+") < order.index("a1-")
