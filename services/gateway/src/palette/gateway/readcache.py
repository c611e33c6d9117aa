"""Reads shared by the requests of a short moment (``MongoRepository``'s jobs and ledgers).

A job being watched is read over and over: a dashboard, an event stream, a
client polling ``GET /jobs/{id}``, several at once. Each read costs the
database a query or three, and on the one-machine stack the database is a
Python server (SecantusDB): at 200 requests/s the reads alone needed more CPU
than the machine had. A ``ReadCache`` answers a read made less than ``ttl``
seconds ago with its result (refreshing it in the background once it is half
that old), and concurrent identical reads share one query.
Pure logic; the clock is injectable.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar, cast

from cachetools import FIFOCache

T = TypeVar("T")
MAX_ENTRIES = 10_000


class ReadCache:
    """Results of reads by key, each answering for ``ttl`` seconds after it was read."""

    def __init__(
        self,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._ttl = ttl
        # (read at, value) by key; the key put longest ago goes first beyond
        # ``max_entries`` (FIFOCache: a key put again moves to the back; a read does not).
        self._entries: FIFOCache[Hashable, tuple[float, Any]] = FIFOCache(max_entries)
        self.clock = clock
        self._loading: dict[Hashable, asyncio.Future[Any]] = {}

    def fresh(self, key: Hashable) -> tuple[bool, Any]:
        """``(True, value)`` when a read of ``key`` younger than ``ttl`` is kept."""
        entry = self._entries.get(key)
        if entry is None:
            return False, None
        if self.clock() - entry[0] >= self._ttl:
            del self._entries[key]
            return False, None
        return True, entry[1]

    def put(self, key: Hashable, value: Any, at: float | None = None) -> None:
        """Keep ``value`` as read at ``at`` (now by default); the oldest go beyond the bound."""
        self._entries[key] = (self.clock() if at is None else at, value)

    def forget(self, key: Hashable) -> None:
        """Drop what is kept for ``key``: the next read goes to the source."""
        self._entries.pop(key, None)

    async def get(
        self, key: Hashable, load: Callable[[], Awaitable[T]], keep: Callable[[T], bool]
    ) -> T:
        """The kept value, else the result of ``load()``, kept when ``keep`` says so.

        A kept value older than half the ttl is still answered while a load
        refreshes it in the background, so a key read steadily never makes a
        request wait for the database. Concurrent callers share one load, which
        runs as a task of its own: a caller that is cancelled (a client that
        went away) cancels nobody else's.
        """
        entry = self._entries.get(key)
        if entry is not None:
            age = self.clock() - entry[0]
            if age < self._ttl:
                if age >= self._ttl / 2 and key not in self._loading:
                    self._load(key, load, keep)
                return cast(T, entry[1])
            del self._entries[key]
        task = self._loading.get(key) or self._load(key, load, keep)
        return cast(T, await asyncio.shield(task))

    def _load(
        self, key: Hashable, load: Callable[[], Awaitable[T]], keep: Callable[[T], bool]
    ) -> asyncio.Future[Any]:
        started = self.clock()
        task = asyncio.ensure_future(load())
        self._loading[key] = task

        def done(finished: asyncio.Future[Any]) -> None:
            self._loading.pop(key, None)
            if finished.cancelled() or finished.exception() is not None:
                return
            if keep(finished.result()):
                self.put(key, finished.result(), started)

        task.add_done_callback(done)
        return task
