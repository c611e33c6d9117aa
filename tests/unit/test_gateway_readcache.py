"""Reads shared for a short moment: the gateway's ReadCache."""

from __future__ import annotations

import asyncio

import pytest

from palette.gateway.readcache import ReadCache
from tests.unit.gateway_fakes import ManualClock as Clock

pytestmark = pytest.mark.unit


class Source:
    """Counts reads; each returns the next number, after an optional pause."""

    def __init__(self, pause: float = 0.0) -> None:
        self.reads = 0
        self.pause = pause

    async def read(self) -> int:
        self.reads += 1
        await asyncio.sleep(self.pause)
        return self.reads


def keep_all(value: object) -> bool:
    return True


class TestReadCache:
    async def test_a_read_answers_for_ttl_seconds_then_the_source_is_read_again(self) -> None:
        clock, source = Clock(), Source()
        cache = ReadCache(0.25, clock)
        assert await cache.get("job", source.read, keep_all) == 1
        clock.now += 0.1
        assert await cache.get("job", source.read, keep_all) == 1
        assert source.reads == 1
        clock.now += 0.15
        assert await cache.get("job", source.read, keep_all) == 2
        assert source.reads == 2

    async def test_a_value_past_half_its_ttl_is_answered_and_refreshed_behind(self) -> None:
        clock, source = Clock(), Source(pause=0.01)
        cache = ReadCache(0.25, clock)
        assert await cache.get("job", source.read, keep_all) == 1
        clock.now += 0.15
        assert await cache.get("job", source.read, keep_all) == 1  # at once, not after the read
        assert await cache.get("job", source.read, keep_all) == 1  # one refresh at a time
        await asyncio.sleep(0.03)
        assert source.reads == 2
        assert await cache.get("job", source.read, keep_all) == 2

    async def test_keys_are_separate(self) -> None:
        source = Source()
        cache = ReadCache(1.0, Clock())
        assert [await cache.get(k, source.read, keep_all) for k in ("a", "b", "a")] == [1, 2, 1]

    async def test_concurrent_reads_of_a_key_share_one_source_read(self) -> None:
        source = Source(pause=0.01)
        cache = ReadCache(1.0, Clock())
        results = await asyncio.gather(*(cache.get("job", source.read, keep_all) for _ in range(5)))
        assert results == [1] * 5
        assert source.reads == 1

    async def test_a_value_keep_refuses_is_read_again(self) -> None:
        async def missing() -> None:
            reads.append(1)

        reads: list[int] = []
        cache = ReadCache(1.0, Clock())
        for _ in range(2):
            assert await cache.get("job", missing, lambda value: value is not None) is None
        assert len(reads) == 2

    async def test_a_failed_read_is_not_kept_and_reaches_every_waiter(self) -> None:
        attempts: list[int] = []

        async def failing() -> int:
            attempts.append(1)
            await asyncio.sleep(0.01)
            raise ConnectionError("database down")

        cache = ReadCache(1.0, Clock())
        results = await asyncio.gather(
            *(cache.get("job", failing, keep_all) for _ in range(3)), return_exceptions=True
        )
        assert all(isinstance(r, ConnectionError) for r in results)
        with pytest.raises(ConnectionError):
            await cache.get("job", failing, keep_all)
        assert len(attempts) == 2

    async def test_a_cancelled_caller_does_not_cancel_the_shared_read(self) -> None:
        source = Source(pause=0.02)
        cache = ReadCache(1.0, Clock())
        first = asyncio.create_task(cache.get("job", source.read, keep_all))
        second = asyncio.create_task(cache.get("job", source.read, keep_all))
        await asyncio.sleep(0.005)
        first.cancel()
        assert await second == 1
        assert first.cancelled()
        assert await cache.get("job", source.read, keep_all) == 1

    async def test_the_age_counts_from_when_the_read_started(self) -> None:
        clock = Clock()
        cache = ReadCache(0.25, clock)

        async def slow() -> str:
            clock.now += 0.2  # the read itself took 0.2 s
            return "doc"

        await cache.get("job", slow, keep_all)
        assert cache.fresh("job") == (True, "doc")
        clock.now += 0.06
        assert cache.fresh("job") == (False, None)

    def test_forget_and_the_bound_on_entries(self) -> None:
        cache = ReadCache(10.0, Clock(), max_entries=2)
        for key in ("a", "b", "c"):
            cache.put(key, key.upper())
        assert cache.fresh("a") == (False, None)
        assert cache.fresh("c") == (True, "C")
        cache.forget("c")
        assert cache.fresh("c") == (False, None)
