"""The quota figures' arithmetic on the emulator's per-second quota rows (pure: no I/O).

The rows are ``GET /_emulator/quotas/usage`` for one model during one job
(``palette.devstack.quota_usage``): per wall-clock second, requests admitted and
throttled, the quota tokens used by the requests admitted in it, and the lowest
level of the model's tokens-per-minute bucket.

The **steady part** of a job leaves out its start and its end:

- the start: the emulator's bucket starts full, so for up to a minute a client
  may take more than the quota (the bucket's content) and a rate measured over
  that time says nothing about pacing. The steady part begins ``SETTLE_SECONDS``
  after the bucket's level has come down to where it stays (within ``SETTLED``
  of the capacity of the lowest level it reaches before the end), and not
  before ``SKIP_SECONDS`` after the first request. A client that never drains
  the bucket (it paces from the start) is steady after those seconds.
- the end: from the second by which ``1 - TAIL`` of the job's requests were
  admitted, the job runs out of work, not of quota.

Efficiency is the quota tokens used by the requests admitted in the steady part,
per minute, over the TPM quota; tokens the bucket gave up from its store during
the steady part (its level just before the start less its level at the end,
when positive) are not counted, so a steady part that begins before the store is
quite spent does not count the store as pacing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SETTLED = 0.05
SKIP_SECONDS = 5
SETTLE_SECONDS = 3
"""After the level settles, the requests of the burst are still in flight (their
reservations not yet corrected to what they used): a few latencies more."""
TAIL = 0.03
MIN_REST_SECONDS = 5
"""The shortest rest of a phase a throttled share is judged over."""


@dataclass(frozen=True, slots=True)
class Second:
    """One second of a model's quota rows."""

    t: int
    admitted: int
    throttled: int
    used: int
    level: float | None


def seconds(rows: Iterable[Mapping[str, Any]]) -> list[Second]:
    """The emulator's rows (JSON) as ``Second``, oldest first."""
    parsed = [
        Second(
            int(row["t"]),
            int(row["admitted"]),
            int(row["throttled"]),
            int(row["used"]),
            None if row.get("tpm_level_min") is None else float(row["tpm_level_min"]),
        )
        for row in rows
    ]
    return sorted(parsed, key=lambda s: s.t)


@dataclass(frozen=True, slots=True)
class Window:
    """Seconds ``start`` (included) to ``end`` (excluded)."""

    start: int
    end: int

    @property
    def length(self) -> int:
        """Seconds in the window."""
        return self.end - self.start

    def holds(self, second: Second) -> bool:
        """Whether the second is inside."""
        return self.start <= second.t < self.end


def steady_window(rows: Sequence[Second], capacity: float) -> Window | None:
    """The job's steady part (see the module's note); None when it has none."""
    busy = [s for s in rows if s.admitted]
    if not busy:
        return None
    total = sum(s.admitted for s in busy)
    admitted, end = 0, busy[-1].t
    for second in busy:
        admitted += second.admitted
        if admitted >= (1 - TAIL) * total:
            end = second.t
            break
    first = busy[0].t
    levels = [s for s in rows if first <= s.t <= end and s.level is not None]
    start = first + SKIP_SECONDS
    if levels:
        lowest = min(s.level for s in levels if s.level is not None)
        settled = [
            s.t
            for s in levels
            if s.t >= start and s.level is not None and s.level <= lowest + SETTLED * capacity
        ]
        start = settled[0] + SETTLE_SECONDS if settled else end
    return Window(start, end) if end > start else None


def used_per_minute(rows: Sequence[Second], window: Window) -> float:
    """Quota tokens per minute used by the requests admitted in ``window``."""
    used = sum(s.used for s in rows if window.holds(s))
    return used * 60.0 / window.length


def drawn_from_store(rows: Sequence[Second], window: Window) -> float:
    """How far the TPM bucket's level fell from just before the window to its last second."""
    before = [s.level for s in rows if s.t < window.start and s.level is not None]
    inside = [s.level for s in rows if window.holds(s) and s.level is not None]
    if not inside:
        return 0.0
    return max(0.0, (before or inside)[-1 if before else 0] - inside[-1])


def efficiency(rows: Sequence[Second], window: Window, tpm: float) -> float:
    """Tokens per minute used in the window, less the store drawn, over the TPM quota."""
    drawn = drawn_from_store(rows, window) * 60.0 / window.length
    return (used_per_minute(rows, window) - drawn) / tpm


def throttled_share(rows: Iterable[Second], window: Window | None = None) -> float:
    """Throttled requests over all requests (of the window, if given); 0 when none."""
    chosen = [s for s in rows if window is None or window.holds(s)]
    attempts = sum(s.admitted + s.throttled for s in chosen)
    return sum(s.throttled for s in chosen) / attempts if attempts else 0.0


def attempts(rows: Iterable[Second]) -> tuple[int, int]:
    """Requests throttled and all requests."""
    chosen = list(rows)
    throttled = sum(s.throttled for s in chosen)
    return throttled, throttled + sum(s.admitted for s in chosen)


def recovery_seconds(rows: Sequence[Second], phase: Window, bound: float) -> int | None:
    """Seconds after the phase's start from which its throttled share stays under ``bound``.

    The smallest ``d`` such that the throttled share over ``[start + d, end)`` is
    below ``bound``, judged while at least ``MIN_REST_SECONDS`` of the phase are
    left; a rest without requests does not count (a client that stopped is not
    one that recovered). None when there is none (not recovered within the phase).
    """
    for delay in range(phase.length - MIN_REST_SECONDS + 1):
        rest = Window(phase.start + delay, phase.end)
        throttled, tried = attempts(s for s in rows if rest.holds(s))
        if tried and throttled < bound * tried:
            return delay
    return None
