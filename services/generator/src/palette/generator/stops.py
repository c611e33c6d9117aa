"""Which jobs are stopped, as this process knows it. Pure logic, no I/O."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable
from typing import TypeVar

from cachetools import FIFOCache

from palette.common.messages import JobStatus

T = TypeVar("T")
DEFAULT_CAPACITY = 100_000
POLL_SLICE_SECONDS = 0.05


class StopRegistry:
    """Stopped jobs, fed by ``JobStopped`` broadcasts and status reads.

    A stopped job never runs again, so an entry is never removed except to
    keep the registry bounded (the oldest go first).
    """

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        # FIFOCache: the job stopped longest ago goes first beyond ``capacity``
        # (stopping a job again moves it to the back).
        self._stopped: FIFOCache[str, JobStatus] = FIFOCache(capacity)
        self._watchers: dict[str, set[asyncio.Future[None]]] = {}

    def stop(self, job_id: str, status: JobStatus) -> bool:
        """Mark a job stopped; returns whether it was not already."""
        new = job_id not in self._stopped
        self._stopped[job_id] = status
        for watcher in self._watchers.pop(job_id, ()):
            if not watcher.done():
                watcher.set_result(None)
        return new

    def is_stopped(self, job_id: str) -> bool:
        """Whether the job is known to be stopped."""
        return job_id in self._stopped

    def status(self, job_id: str) -> JobStatus | None:
        """The final status a stopped job was reported with."""
        return self._stopped.get(job_id)

    async def sleep(self, job_id: str, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking early if the job stops; True if it stopped."""
        deadline = time.monotonic() + seconds
        while not self.is_stopped(job_id):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            await asyncio.sleep(min(left, POLL_SLICE_SECONDS))
        return True

    async def race(self, job_id: str, work: Awaitable[T]) -> T | None:
        """``work``'s result, or None (``work`` cancelled) if the job stops first."""
        task = asyncio.ensure_future(work)
        if self.is_stopped(job_id):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            return None
        watcher: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        watchers = self._watchers.setdefault(job_id, set())
        watchers.add(watcher)
        try:
            await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            watchers.discard(watcher)
            if not watchers and self._watchers.get(job_id) is watchers:
                del self._watchers[job_id]
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if task.cancelled():
            return None
        return task.result()

    def __len__(self) -> int:
        return len(self._stopped)
