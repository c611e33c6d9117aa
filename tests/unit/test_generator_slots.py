"""The generator's call slots: a bound on calls in flight, granted oldest attempt first."""

from __future__ import annotations

import asyncio

import pytest

from palette.generator.slots import PREVIEW, CallSlots

pytestmark = pytest.mark.unit


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


class TestCallSlots:
    async def test_never_more_holders_than_the_limit(self) -> None:
        slots = CallSlots(3)
        holding = peak = 0

        async def call(k: int) -> None:
            nonlocal holding, peak
            async with slots.hold((k % 2, k)):
                holding += 1
                peak = max(peak, holding)
                await asyncio.sleep(0.001)
                holding -= 1

        await asyncio.gather(*(call(k) for k in range(20)))
        assert peak == 3
        assert slots.free == 3

    async def test_a_freed_slot_goes_to_the_lowest_priority_waiting(self) -> None:
        slots = CallSlots(1)
        await slots.acquire((1, 0))
        granted: list[tuple[int, ...]] = []

        async def wait(priority: tuple[int, ...]) -> None:
            await slots.acquire(priority)
            granted.append(priority)
            slots.release()

        # The newer attempt (2) starts waiting first; the older (1) and a preview still win.
        waiters = [asyncio.create_task(wait(p)) for p in [(2, 0), (1, 5), (2, 1), PREVIEW]]
        await settle()
        slots.release()
        await asyncio.gather(*waiters)
        assert granted == [PREVIEW, (1, 5), (2, 0), (2, 1)]

    async def test_equal_priorities_are_served_in_arrival_order(self) -> None:
        slots = CallSlots(1)
        await slots.acquire((1, 0))
        granted: list[int] = []

        async def wait(k: int) -> None:
            async with slots.hold((3, 3)):
                granted.append(k)

        waiters = []
        for k in range(4):
            waiters.append(asyncio.create_task(wait(k)))
            await settle()
        slots.release()
        await asyncio.gather(*waiters)
        assert granted == [0, 1, 2, 3]

    async def test_a_cancelled_waiter_loses_no_slot(self) -> None:
        slots = CallSlots(1)
        await slots.acquire((1, 0))
        cancelled = asyncio.create_task(slots.acquire((1, 1)))
        later = asyncio.create_task(slots.acquire((2, 0)))
        await settle()
        slots.release()  # handed to the first waiter ...
        cancelled.cancel()  # ... which is cancelled before it runs: it passes the slot on
        await settle()
        assert cancelled.cancelled()
        assert later.done()
        slots.release()
        assert slots.free == 1

    def test_attempts_are_numbered_in_start_order(self) -> None:
        slots = CallSlots(2)
        assert [slots.next_attempt() for _ in range(3)] == [1, 2, 3]
        assert PREVIEW < (1, 0)

    def test_refuses_a_limit_below_one(self) -> None:
        with pytest.raises(ValueError, match="at least 1"):
            CallSlots(0)
