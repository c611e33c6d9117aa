"""Quota pacing arithmetic: AIMD rate control and max-min fair shares. Pure, no I/O.

Rates are quota tokens per minute, counted as Bedrock counts them: a call
reserves its input tokens plus ``maxTokens`` when it starts, corrected at its
end to input + output x burndown (docs/internals.md, "Bedrock quotas").

``AimdRate`` is one model's rate in one generator: its cap is the generator's
fair share of the model's quota (None: the quota is unknown, and the rate
starts unlimited). A throttle decreases it multiplicatively, at most once per
``cooldown``; time without throttles increases it additively, fast while it
is well below the rate the last throttle met (the ``ceiling``: it recovers to
what worked) and slowly around it (it probes). An unknown quota paced for a
throttle becomes unlimited again once nothing has throttled for
``unlimit_after`` seconds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

WINDOW_SECONDS = 10


class ModelUnavailableError(Exception):
    """The model has been throttled without a single answer for too long."""

    def __init__(self, model_id: str, seconds: float) -> None:
        super().__init__(
            f"model {model_id} throttled every call for {seconds:.0f} s (its quota may be 0)"
        )
        self.model_id = model_id
        self.seconds = seconds


@dataclass(slots=True)
class Ticket:
    """A call's reservation in the bucket."""

    tokens: int
    waited: float = 0.0
    """Seconds the call waited for the bucket."""
    sent: float = 0.0
    """When it was taken (the clock's reading)."""
    rate: float | None = None
    """The rate it was paced at (None: unlimited)."""


@dataclass(frozen=True, slots=True)
class AimdParams:
    """The controller's constants (rates as fractions of the ceiling per second)."""

    decrease: float = 0.7
    """A throttle multiplies the rate by this."""
    cooldown: float = 1.0
    """Seconds after a decrease during which further throttles decrease nothing more."""
    recover: float = 0.1
    """Increase per second while below ``near`` x the ceiling, as a fraction of the ceiling."""
    probe: float = 0.003
    """Increase per second from there on, as a fraction of the ceiling."""
    near: float = 0.9
    near_shared: float = 0.8
    """``near`` while other generators share the quota. They are throttled together, so
    each one's ceiling also holds what the others took above their parts; recovering fast
    to 0.9 of those ceilings took them over the quota again (the bench's quota change:
    ``python -m bench.quota_change_sim``, a median of 12.5 s to recover at 0.9, 5.5 s at
    0.8). Alone, 0.9: a lone generator's ceiling is its own."""
    probe_grace: float = 15.0
    probe_growth: float = 5.0
    """While other generators share the quota, a probe that has met no throttle for
    ``probe_grace`` seconds grows by its own size every ``probe_growth`` seconds more.
    Stopping the fast recovery at 80 % leaves more to probe, and four generators at 0.3 %
    a second took about a minute to climb back once a quota was raised again (the
    simulation: 0.55 of the restored quota used in its first minute, 0.73 at 90 %; 0.80
    with this growth, the halving's recovery unchanged). Shared probes under a quota
    still binding meet a throttle more often than every 15 s, so they stay slow."""
    floor: float = 0.05
    """The rate never goes below this fraction of its cap (or, unknown, of the best seen)."""
    unlimit_after: float = 60.0
    """An unknown quota's rate is lifted after this long without a throttle."""


class AimdRate:
    """One model's rate (tokens per minute) in one generator: a cap times AIMD.

    Args:
        cap: the fair share of a known quota; None: unknown quota, unlimited until throttled.
        now: the clock's reading (seconds).
        params: the controller's constants.
    """

    def __init__(self, cap: float | None, now: float, params: AimdParams | None = None) -> None:
        self.params = params or AimdParams()
        self.cap = cap
        self.rate: float | None = cap
        """Tokens per minute now; None: unlimited (an unknown quota, nothing throttled)."""
        self.ceiling: float | None = None
        """The rate the last throttle after a success met: what to recover to."""
        self.best = 0.0
        """The largest use of answered calls seen (unknown quota): the floor's reference."""
        self.minimum = 0.0
        """The least rate whatever the floor (the pacer sets one call a second)."""
        self.shared = False
        """Other generators share the quota (``near_shared`` applies)."""
        self._updated = now
        self._decreased = -math.inf
        self._throttled = -math.inf
        self._succeeded_since_decrease = True
        self._before: tuple[float | None, float | None] = (cap, None)
        """The rate and ceiling before the last marked decrease (``undo`` goes back to them)."""
        self.reference = 0.0
        """The rate the last decrease started from."""

    @property
    def factor(self) -> float | None:
        """The rate as a fraction of the cap (None when either is unknown)."""
        if self.cap is None or self.rate is None or self.cap <= 0:
            return None
        return self.rate / self.cap

    def _floor(self) -> float:
        base = self.cap if self.cap is not None else self.best
        return max(base * self.params.floor, self.minimum)

    def set_cap(self, cap: float, now: float, shared: bool = False) -> None:
        """A new fair share of a known quota: the rate keeps its factor.

        ``shared``: other generators hold shares of the quota too.
        """
        self.advance(now)
        self.shared = shared
        if self.cap is None or self.rate is None or self.cap <= 0:
            self.rate = cap
        else:
            scale = cap / self.cap
            self.rate *= scale
            if self.ceiling is not None:
                self.ceiling *= scale
        self.cap = cap

    def succeeded(self) -> None:
        """A call was answered: the next throttle may move the ceiling."""
        self._succeeded_since_decrease = True

    def throttled(
        self, now: float, used: float, mark: bool = True, least: float = 0.0, answered: bool = True
    ) -> bool:
        """A throttle; ``used`` is what the model's calls used lately (tokens per minute).

        Returns whether the rate decreased (at most once per cooldown, never below
        ``least``); ``mark``: remember the rate before it, for ``undo``. ``answered``:
        ``used`` is what answered calls used, not what calls asked before any answer (an
        ask is not a use the quota allowed, so it never raises the floor's reference).
        """
        self.advance(now)
        self._throttled = now
        if now - self._decreased < self.params.cooldown:
            return False
        if answered:
            self.best = max(self.best, used)
        current = self.rate if self.rate is not None else used
        if used > 0:  # what the calls used, when the rate stood above it
            current = min(current, used)
        self.reference = current
        if mark:
            self._before = (self.rate, self.ceiling)
        if self._succeeded_since_decrease or self.ceiling is None:
            self.ceiling = current if current > self._floor() else None
        self.rate = max(self._floor(), least, current * self.params.decrease)
        if self.cap is not None:
            self.rate = min(self.rate, self.cap)
        self._decreased = now
        self._succeeded_since_decrease = False
        return True

    def undo(self, now: float) -> None:
        """The decreases since ``mark`` did not answer a quota: back to the rate before them."""
        self.advance(now)
        rate, ceiling = self._before
        if rate is None or self.rate is None or rate > self.rate:
            self.rate, self.ceiling = rate, ceiling
        if self.cap is not None and self.rate is not None:
            self.rate = min(self.rate, self.cap)

    def advance(self, now: float) -> None:
        """Additive increase for the time since the last look.

        Below the ceiling it recovers fast, then probes slowly past it (faster after
        ``probe_grace`` without a throttle, when shared); with no
        ceiling (probed past it, or nothing known) a known quota's rate grows by
        ``recover`` of its cap a second, an unknown one's doubles every second.
        An unknown quota not throttled for ``unlimit_after`` is unlimited again.
        """
        dt = now - self._updated
        if dt <= 0:
            return
        self._updated = now
        if self.rate is None:
            return
        p = self.params
        if self.cap is None and now - self._throttled > p.unlimit_after:
            self.rate, self.ceiling = None, None
            return
        if self.ceiling is None:  # a known cap: 10 % of it a second; unknown: doubling
            step = p.recover * self.cap if self.cap is not None else self.rate
        elif self.rate < (p.near_shared if self.shared else p.near) * self.ceiling:
            step = p.recover * self.ceiling
        else:
            step = p.probe * self.ceiling
            quiet = now - self._throttled - p.probe_grace
            if self.shared and quiet > 0 and math.isfinite(quiet):
                step *= 1.0 + quiet / p.probe_growth
        self.rate += step * dt
        if self.ceiling is not None and self.rate > self.ceiling * (1 + 5 * p.probe):
            self.ceiling = None  # probed well past it and nothing throttled
        if self.cap is not None and self.rate >= self.cap:
            self.rate, self.ceiling = self.cap, None


def fair_shares(quota: float, demands: Mapping[str, float | None]) -> dict[str, float]:
    """Max-min fair shares of ``quota`` by demand (None: as much as there is).

    Demands below an equal split are met; the rest is split equally among the
    others; whatever no demand takes is split equally among all, so the shares
    always add up to the quota.
    """
    if not demands:
        return {}
    shares = dict.fromkeys(demands, 0.0)
    left = quota
    open_ = sorted(demands, key=lambda h: (math.inf if demands[h] is None else demands[h], h))
    while open_:
        equal = left / len(open_)
        holder = open_[0]
        wanted = demands[holder]
        if wanted is None or wanted >= equal:
            for h in open_:
                shares[h] = equal
            return shares
        shares[holder] = max(wanted, 0.0)
        left -= shares[holder]
        open_.pop(0)
    spare = left / len(shares)
    return {h: s + spare for h, s in shares.items()}


class UsageWindow:
    """Quota tokens used per second over the last ``seconds`` (a ring of one-second slots)."""

    __slots__ = ("_first", "_last", "_slots")

    def __init__(self, seconds: int = WINDOW_SECONDS) -> None:
        self._slots = [0.0] * seconds
        self._first: int | None = None
        self._last = 0

    def _roll(self, second: int) -> None:
        if self._first is None:
            self._first = self._last = second
            return
        size = len(self._slots)
        for s in range(self._last + 1, min(second, self._last + size) + 1):
            self._slots[s % size] = 0.0
        self._last = max(self._last, second)

    def add(self, now: float, tokens: float) -> None:
        """Count ``tokens`` used now."""
        second = int(now)
        self._roll(second)
        self._slots[second % len(self._slots)] += tokens

    def __len__(self) -> int:
        return len(self._slots)

    def recent_total(self, now: float, seconds: int) -> float:
        """What was added over the last ``seconds`` whole seconds and the current one."""
        if self._first is None:
            return 0.0
        second = int(now)
        self._roll(second)
        size = len(self._slots)
        seconds = min(seconds, size - 1)
        return sum(self._slots[s % size] for s in range(second - seconds, second + 1))

    def recent_per_minute(self, now: float, seconds: int) -> float:
        """Tokens per minute over the last ``seconds`` whole seconds before the current one."""
        if self._first is None:
            return 0.0
        second = int(now)
        self._roll(second)
        seconds = min(seconds, len(self._slots) - 1, max(1, second - self._first))
        size = len(self._slots)
        return sum(self._slots[s % size] for s in range(second - seconds, second)) / seconds * 60.0

    def per_minute(self, now: float) -> float:
        """Tokens per minute used over the window (or since the first use, if shorter)."""
        if self._first is None:
            return 0.0
        self._roll(int(now))
        span = min(float(len(self._slots)), max(1.0, now - self._first))
        return sum(self._slots) / span * 60.0
