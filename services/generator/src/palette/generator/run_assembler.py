"""Grouping finished records into parts: runs of consecutive indices.

Pure logic, no I/O. A part holds a contiguous run of records
``[first, first + n)`` with ``n <= part_size``; see docs/internals.md.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence

from palette.generator.records import FinishedRecord


def contiguous_runs(indices: Iterable[int], part_size: int) -> list[tuple[int, int]]:
    """Split indices into runs ``(first, n)`` of consecutive indices, ``n <= part_size``."""
    if part_size < 1:
        raise ValueError("part_size must be at least 1")
    runs: list[tuple[int, int]] = []
    for index in sorted(set(indices)):
        if runs and runs[-1][0] + runs[-1][1] == index and runs[-1][1] < part_size:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((index, 1))
    return runs


class RunAssembler:
    """Hands out runs of finished records once they can no longer grow, or have waited.

    ``order`` is the ascending list of indices the attempt generates. Each is
    resolved once, either finished (a record) or dropped (failed, abandoned).
    Runs are cut inside the prefix of ``order`` that is fully resolved, at
    ``part_size``, at a dropped index or where indices are not consecutive.
    With ``max_wait`` (seconds of ``clock``), a finished record waits at most
    that long: once the oldest one not handed out has waited so long, every
    finished record not handed out leaves at once, as the contiguous runs they
    form (also beyond an index still in flight; a run handed out early cuts
    the runs around it later). Without ``max_wait`` every part is the same
    whatever order records finish in.
    """

    def __init__(
        self,
        order: Sequence[int],
        part_size: int,
        max_wait: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if part_size < 1:
            raise ValueError("part_size must be at least 1")
        if max_wait is not None and max_wait < 0:
            raise ValueError("max_wait must not be negative")
        self._order = list(order)
        self._size = part_size
        self._max_wait = max_wait
        self._clock = clock
        self._resolved: dict[int, FinishedRecord | None] = {}
        self._cursor = 0
        self._run: list[FinishedRecord] = []
        self._waiting: dict[int, float] = {}
        """Finished records not handed out yet -> when they finished (oldest first)."""
        self._handed: set[int] = set()
        """Indices ahead of the cursor already handed out by an early flush."""

    def finish(self, record: FinishedRecord) -> None:
        """A record is finished."""
        self._resolve(record.index, record)
        self._waiting[record.index] = self._clock()

    def drop(self, index: int) -> None:
        """An index will not be finished in this attempt."""
        self._resolve(index, None)

    def _resolve(self, index: int, value: FinishedRecord | None) -> None:
        if index in self._resolved or index in self._handed:
            raise ValueError(f"index {index} is already resolved")
        self._resolved[index] = value

    def due(self) -> float | None:
        """When (``clock`` time) the oldest waiting record must leave; None: none waits."""
        if self._max_wait is None or not self._waiting:
            return None
        return next(iter(self._waiting.values())) + self._max_wait

    def ready(self) -> list[list[FinishedRecord]]:
        """Runs to write now (call after each finish/drop, and when ``due`` comes)."""
        closed: list[list[FinishedRecord]] = []
        self._advance(closed)
        if len(self._run) >= self._size:
            self._hand(self._run, closed)
            self._run = []
        deadline = self.due()
        if deadline is not None and self._clock() >= deadline:
            self._flush(closed)
        return closed

    def rest(self) -> list[list[FinishedRecord]]:
        """At the end: every finished record not handed out yet, grouped into runs."""
        closed = self.ready()
        while self._cursor < len(self._order):
            index = self._order[self._cursor]
            self._take(None if index in self._handed else self._resolved.pop(index, None), closed)
            self._handed.discard(index)
            self._cursor += 1
        if self._run:
            self._hand(self._run, closed)
            self._run = []
        return closed

    def _advance(self, closed: list[list[FinishedRecord]]) -> None:
        """Move the cursor over the resolved prefix of ``order``."""
        while self._cursor < len(self._order):
            index = self._order[self._cursor]
            if index in self._handed:
                self._handed.discard(index)
                self._take(None, closed)
            elif index in self._resolved:
                self._take(self._resolved.pop(index), closed)
            else:
                return
            self._cursor += 1

    def _flush(self, closed: list[list[FinishedRecord]]) -> None:
        """Hand out every finished record now: the open run, then runs beyond the cursor."""
        if self._run:
            self._hand(self._run, closed)
            self._run = []
        run: list[FinishedRecord] = []
        left = len(self._waiting)  # every one of them lies ahead of the cursor now
        for index in self._order[self._cursor :]:
            if not left:
                break
            record = self._resolved.get(index)
            if record is not None:
                del self._resolved[index]
                self._handed.add(index)
                left -= 1
            run = self._extend(run, record, closed)
        if run:
            self._hand(run, closed)

    def _hand(self, run: list[FinishedRecord], closed: list[list[FinishedRecord]]) -> None:
        for record in run:
            self._waiting.pop(record.index, None)
        closed.append(run)

    def _take(self, record: FinishedRecord | None, closed: list[list[FinishedRecord]]) -> None:
        self._run = self._extend(self._run, record, closed)

    def _extend(
        self,
        run: list[FinishedRecord],
        record: FinishedRecord | None,
        closed: list[list[FinishedRecord]],
    ) -> list[FinishedRecord]:
        """``run`` with ``record`` added, or a new run after handing ``run`` out.

        None (a dropped or unresolved index) and a record that does not follow
        on, or does not fit, close the run.
        """
        if record is None or (
            run and (run[-1].index + 1 != record.index or len(run) >= self._size)
        ):
            if run:
                self._hand(run, closed)
            run = []
        if record is not None:
            run.append(record)
        return run
