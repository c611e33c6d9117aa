"""Per-user request rate limit: a token bucket per token ``sub``, in this process.

Each user has a bucket of ``rate_limit_burst`` requests that refills at
``rate_limit_per_second``; a request finding it empty gets a 429 problem with
``Retry-After``. Buckets live in the gateway process and idle ones are
dropped, so memory stays bounded.

Each replica limits on its own, on purpose: the limit protects a replica and
keeps one user from crowding out others; it is not a quota (money is capped by
the budget ledger, concurrent jobs by ``max_active_jobs`` in the database). A
shared bucket would cost a database write on every request, reads included
(see docs/deployment.md for the figures and how to size the limit for N
replicas).
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache
from litestar.types import ASGIApp, Receive, Scope, Send

from palette.gateway.bearer_tokens import Principal
from palette.gateway.problems import Problem

MAX_BUCKETS = 100_000


@dataclass(slots=True)
class Bucket:
    """Tokens left and when they were counted."""

    tokens: float
    at: float


class RateLimiter:
    """Token buckets keyed by user (pure logic; the clock is injectable)."""

    def __init__(
        self,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = MAX_BUCKETS,
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._clock = clock
        # The least recently used bucket goes first beyond ``max_buckets``.
        self._buckets: LRUCache[str, Bucket] = LRUCache(max_buckets)

    def describe(self) -> str:
        """The limit in words."""
        return f"{self._rate:g} requests per second per user, in bursts of up to {self._burst}"

    def take(self, key: str) -> float:
        """Spend one request of ``key``: 0 when allowed, else seconds until one is."""
        now = self._clock()
        bucket = self._buckets.get(key) or Bucket(float(self._burst), now)
        bucket.tokens = min(float(self._burst), bucket.tokens + (now - bucket.at) * self._rate)
        bucket.at = now
        self._buckets[key] = bucket
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self._rate


class RateLimitMiddleware:
    """ASGI middleware: 429 when the authenticated user is over the rate."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter, **_: Any) -> None:
        self.app = app
        self._limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Count the request against its user (unauthenticated requests are not counted)."""
        user = scope.get("user")
        if isinstance(user, Principal):
            wait = self._limiter.take(user.sub)
            if wait > 0:
                retry = max(1, math.ceil(wait))
                raise Problem(
                    429,
                    f"too many requests; the limit is {self._limiter.describe()}",
                    slug="rate-limited",
                    headers={"Retry-After": str(retry)},
                )
        await self.app(scope, receive, send)


class OwnerLocks:
    """One asyncio lock per user, so a user's check-then-insert steps do not interleave.

    Locks nobody holds are garbage-collected (weak values).
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @asynccontextmanager
    async def hold(self, owner: str) -> AsyncIterator[None]:
        """Hold the owner's lock for the block."""
        lock = self._locks.get(owner)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[owner] = lock
        async with lock:
            yield
