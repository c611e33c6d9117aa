"""The process-wide bound on concurrent model calls, granted oldest attempt first.

A generator holds up to ``prefetch`` partitions at once and every one of them
runs ``concurrency`` workers, so more calls want a slot than there are. Were
slots granted first come first served, the partitions would advance in
lockstep and end together; the generator would then sit idle while it acks
them and sets up the next ones (claim, list parts, read seeds). Granting them
by priority, lowest first, with attempts numbered as they start, makes the
oldest partition finish first while the next one, already set up, takes over
the slots it frees. Previews take priority 0, before any attempt.

No I/O; the waiters are futures of the running event loop.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

Priority = tuple[int, ...]
PREVIEW: Priority = (0,)


class CallSlots:
    """``limit`` slots; a released slot goes to the waiter with the lowest priority."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the limit must be at least 1")
        self._free = limit
        self._waiters: list[tuple[Priority, int, asyncio.Future[None]]] = []
        self._order = itertools.count()
        self._attempts = itertools.count(1)

    @property
    def free(self) -> int:
        """Slots no call holds."""
        return self._free

    def next_attempt(self) -> int:
        """A number for an attempt that starts now (1, 2, ...): its calls' priority."""
        return next(self._attempts)

    async def acquire(self, priority: Priority) -> None:
        """Wait for a slot; among waiters, the lowest priority (then the first) gets it."""
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (priority, next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self.release()  # handed a slot just as it was cancelled: pass it on
            raise

    def release(self) -> None:
        """Give a slot back: to the first waiter in priority order, else to the pool."""
        while self._waiters:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                future.set_result(None)
                return
        self._free += 1

    @asynccontextmanager
    async def hold(self, priority: Priority) -> AsyncIterator[None]:
        """Hold a slot for the block."""
        await self.acquire(priority)
        try:
            yield
        finally:
            self.release()
