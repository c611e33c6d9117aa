"""Which throttles answer to the rate: a test of each of ``AimdRate``'s decreases. Pure, no I/O."""

from __future__ import annotations

import math
from dataclasses import dataclass

from palette.generator.pacing import UsageWindow


@dataclass(frozen=True, slots=True)
class ShareParams:
    """The constants of ``ThrottleShare``."""

    recent: int = 3
    """A throttle is judged on the calls that ended in this many whole seconds and the current."""
    z: float = 3.0
    """Standard deviations above the background that say the rate is too high."""
    odds: float = 99.0
    """A test ends when one answer is this many times likelier than the other."""
    test_seconds: float = 10.0
    """A decrease not judged by then is kept."""
    run_depth: float = 0.49
    """A run of decreases not yet judged goes no lower than this times the rate it started from."""
    most_background: float = 0.5
    """A larger throttled share is never background: the rate is decreased (its quota may be 0)."""
    sure_share: float = 0.6
    sure_throttles: int = 8
    """A decrease when more than ``sure_share`` of the recent calls, and at least this many,
    were throttled is a quota's: kept at once, and not held up by a run's floor."""
    least_share: float = 0.02
    """The least throttled share either answer expects (a stray throttle proves nothing)."""
    high_share: float = 0.9
    """The share a rate still far above its quota throttles: when the rate a decrease
    started from was far above it (the asks before any answer), both answers above expect
    far fewer throttles than come, and "not the rate" must also beat this one."""


@dataclass(slots=True)
class _Test:
    since: float
    reference: float
    """The rate the decrease started from (tokens per minute)."""
    share: float
    """The throttled share before it."""
    evidence: float = 0.0
    """Log odds that the throttles do not answer to the rate."""
    high: float = 0.0
    """Log odds that they do not, against nearly every call throttled (``high_share``)."""
    crossed: bool = False
    """``evidence`` has reached the odds: "not the rate" once ``high`` does too."""


class ThrottleShare:
    """Whether a model's throttles answer to its rate: a decrease that does not help is undone.

    Bedrock also throttles for reasons no rate of ours changes (its capacity at busy
    times, other callers; the emulator's random throttles). Taking each of those for a
    quota would pace the model down to its floor. So each run of decreases is a test
    between two answers, judged on the calls sent after it as they end (a sequential
    probability ratio test). If the throttles came from a quota, a call sent at a fraction
    ``f`` of the reference rate is throttled with the share ``1 - (1 - s) / f`` (the
    quota's tokens spread over less demand), if they did not, with the share ``s`` seen
    before. Once one answer is ``odds`` times likelier, the test ends: a quota keeps the
    decreases; otherwise they are undone and ``s`` becomes the background. "Not the rate"
    must also be ``odds`` times likelier than nearly every call throttled (``high_share``:
    a run that started far above its quota, which neither answer expects). Later
    throttles decrease the rate only when the recent share stands ``z`` standard
    deviations above the background; with the rate steady, the background follows the
    share seen over the window, so it falls back to 0 when those throttles stop.
    """

    __slots__ = (
        "_asked",
        "_calls",
        "_decreased",
        "_looked",
        "_reference",
        "_test",
        "_throttles",
        "_used",
        "background",
        "least",
        "params",
    )

    def __init__(self, params: ShareParams | None = None) -> None:
        self.params = params or ShareParams()
        self._calls = UsageWindow()
        self._throttles = UsageWindow()
        self.background = 0.0
        """The throttled share the rate does not change."""
        self._test: _Test | None = None
        self._looked = -math.inf
        self._decreased: float | None = None
        """When the run of decreases not yet judged began (None: no such run)."""
        self._reference = 0.0
        self.least = 0.0
        """The least rate the run of decreases may reach before it is judged."""
        self._used = UsageWindow()
        self._asked = UsageWindow()

    def _recent(self, now: float, seconds: int) -> tuple[float, float]:
        calls = self._calls.recent_total(now, seconds)
        return calls, self._throttles.recent_total(now, seconds)

    def ended(
        self, now: float, sent: float, rate: float | None, throttled: bool, used: float = 0.0
    ) -> bool | None:
        """A call sent at ``sent``, paced at ``rate``, ended now, using ``used`` quota tokens.

        Returns the verdict on the decreases under test when this call settles it:
        True, they answered a quota (keep them); False, they did not (undo them).
        """
        self._calls.add(now, 1.0)
        if used:
            self._used.add(now, used)
        if throttled:
            self._throttles.add(now, 1.0)
        test = self._test
        if test is None:
            if self.background > 0 and now - self._looked >= 1.0:
                self._follow(now)
            return None
        if sent >= test.since:
            test.evidence += self._weight(test, rate, throttled)
            test.high += self._against_high(test, throttled)
        p, limit = self.params, math.log(self.params.odds)
        # "Not the rate" also needs the calls to rule out a rate still far above its quota
        # (both answers expect far fewer throttles than nearly every call).
        test.crossed = test.crossed or test.evidence >= limit
        quota = test.evidence <= -limit
        other = not quota and test.crossed and test.high >= limit
        if not (quota or other) and now - test.since < p.test_seconds:
            return None
        self._test = self._decreased = None
        self._looked = now
        if not other:
            return True
        self.background = test.share
        return False

    def _weight(self, test: _Test, rate: float | None, throttled: bool) -> float:
        """The call's log odds for "not the rate" against "a quota"."""
        least = self.params.least_share
        f = 1.0 if rate is None else min(1.0, rate / test.reference)
        other = min(max(test.share, least), 1 - least)
        quota = min(max(1 - (1 - test.share) / f, self.background, least), 1 - least)
        if throttled:
            return math.log(other / quota)
        return math.log((1 - other) / (1 - quota))

    def _against_high(self, test: _Test, throttled: bool) -> float:
        """The call's log odds for "not the rate" against a rate still far above its quota."""
        least, high = self.params.least_share, self.params.high_share
        other = min(max(test.share, least), 1 - least)
        return math.log(other / high) if throttled else math.log((1 - other) / (1 - high))

    def _follow(self, now: float) -> None:
        self._looked = now
        calls, throttles = self._recent(now, len(self._calls) - 1)
        if calls >= 30:
            self.background = min(throttles / calls, self.params.most_background)

    def used_per_minute(self, now: float, seconds: int | None = None) -> float:
        """Quota tokens the answered calls used per minute, over the window or ``seconds``."""
        if seconds is None:
            return self._used.per_minute(now)
        return self._used.recent_per_minute(now, seconds)

    def used_lately(self, now: float, seconds: int) -> float:
        """What a throttle decreases from (quota tokens per minute).

        The use over ``seconds`` when at least 10 calls were answered in them, else over
        the window when 5 were; else 0 (too few to tell: the rate is kept as it is).
        """
        for span in (seconds, len(self._calls) - 1):
            calls, throttles = self._recent(now, span)
            if calls - throttles >= (10 if span == seconds else 5):
                return self.used_per_minute(now, span)
        return 0.0

    def asked(self, now: float, tokens: int) -> None:
        """A call took ``tokens`` from the bucket now."""
        self._asked.add(now, tokens)

    def asked_per_minute(self, now: float) -> float:
        """What the calls took from the bucket, per minute (answered or not)."""
        return self._asked.per_minute(now)

    def explained(self, now: float) -> bool:
        """Whether the recent throttles are within the background's share (decrease nothing)."""
        b = self.background
        if b <= 0:
            return False
        calls, throttles = self._recent(now, self.params.recent)
        return throttles <= b * calls + self.params.z * math.sqrt(calls * b * (1 - b)) + 1.0

    def _sure(self, calls: float, throttles: float) -> bool:
        """Whether nearly every recent call was throttled (see ``sure_share``)."""
        p = self.params
        return throttles >= p.sure_throttles and throttles > p.sure_share * calls

    def in_run(self, now: float) -> bool:
        """Whether a decrease now continues a run of decreases not yet judged.

        A run with no test running (too few calls ended to start one, or most of them
        throttled) ends ``test_seconds`` after its first decrease: its decreases are kept,
        and the next one starts a new run.
        """
        if self._test is not None:
            return True
        first = self._decreased
        return first is not None and now - first < self.params.test_seconds

    def decreased(self, now: float, reference: float) -> None:
        """The rate was decreased now from ``reference``: test it unless a test runs.

        When nearly every call is throttled (``sure_share`` of at least ``sure_throttles``
        in the recent seconds) the decrease is kept at once, a quota's (or a quota of 0),
        and the next decrease starts a new run: the run's floor does not hold it up.
        """
        calls, throttles = self._recent(now, self.params.recent)
        if self._sure(calls, throttles):
            self._test = self._decreased = None
            self.least = 0.0
            return
        if not self.in_run(now):
            self._reference, self.least = reference, reference * self.params.run_depth
            self._decreased = now
        reference = self._reference
        if self._test is not None or reference <= 0:
            return
        share = throttles / calls if calls else 1.0
        if calls >= 5 and share <= self.params.most_background:
            self._test = _Test(now, reference, share)
