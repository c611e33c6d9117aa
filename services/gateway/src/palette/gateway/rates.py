"""Recent generation rates: samples of ``records_done`` over time, per job, in this process.

Every read of a job's progress (dashboard, event stream) adds a sample; the
rate is the change over the samples of the last ``window`` seconds. With too
few samples it falls back to the average since the job started. Pure logic,
the clock is injectable; memory is bounded (oldest jobs are forgotten first).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from datetime import datetime

from cachetools import FIFOCache

WINDOW_SECONDS = 60.0
MIN_SPAN_SECONDS = 2.0
MAX_JOBS = 10_000
MAX_SAMPLES = 240


class RateTracker:
    """Per-job samples of records done, and the rate they show."""

    def __init__(
        self,
        window: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        max_jobs: int = MAX_JOBS,
    ) -> None:
        self._window = window
        self._clock = clock
        # The job observed longest ago goes first beyond ``max_jobs`` (FIFOCache: a
        # key written again moves to the back; reading the rate does not).
        self._samples: FIFOCache[str, deque[tuple[float, int]]] = FIFOCache(max_jobs)

    def observe(self, job_id: str, done: int) -> None:
        """Record that ``job_id`` had ``done`` records now."""
        now = self._clock()
        samples = self._samples.get(job_id) or deque(maxlen=MAX_SAMPLES)
        samples.append((now, done))
        while samples and now - samples[0][0] > self._window:
            samples.popleft()
        self._samples[job_id] = samples

    def recent_rate(self, job_id: str) -> float | None:
        """Records per second over the window, or None with too short a span of samples."""
        samples = self._samples.get(job_id)
        if not samples or len(samples) < 2:
            return None
        (t0, d0), (t1, d1) = samples[0], samples[-1]
        if t1 - t0 < MIN_SPAN_SECONDS:
            return None
        return max(d1 - d0, 0) / (t1 - t0)

    def forget(self, job_id: str) -> None:
        """Drop a job's samples (it ended)."""
        self._samples.pop(job_id, None)


def average_rate(done: int, started_at: datetime | None, until: datetime) -> float | None:
    """Records per second since the job started, or None before it started."""
    if started_at is None:
        return None
    seconds = (until - started_at).total_seconds()
    if seconds <= 0:
        return None
    return done / seconds
