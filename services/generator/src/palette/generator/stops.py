"""Which jobs are stopped, as this process knows it. Pure logic, no I/O."""

from __future__ import annotations

import asyncio
import time

from cachetools import FIFOCache

from palette.common.messages import JobStatus

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

    def stop(self, job_id: str, status: JobStatus) -> bool:
        """Mark a job stopped; returns whether it was not already."""
        new = job_id not in self._stopped
        self._stopped[job_id] = status
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

    def __len__(self) -> int:
        return len(self._stopped)
