"""Bedrock's runtime quotas as token buckets: the emulator's pure arithmetic, no I/O.

Per model id (a cross-region inference profile id is a model id of its own):

- requests per minute: a bucket of ``rpm`` requests refilled at ``rpm / 60`` per
  second; each request takes one.
- tokens per minute: a bucket of ``tpm`` tokens refilled at ``tpm / 60`` per second.
  A request reserves ``input tokens + maxTokens`` when it starts; when it ends the
  reservation is corrected to ``input tokens + output tokens x output burndown``
  (an answer with a burndown above 1 may take more than it reserved: the bucket
  then goes below zero and refills from there). A call that is not billed gives
  its reservation back whole.
- tokens per day: the same over a day, ``tpd`` (default ``tpm x 1,440``) refilled
  at ``tpd / 86,400`` per second.

A request is admitted when every bucket holds what it asks; otherwise nothing is
taken and it is throttled, with the first reason of ``rpm``, ``tpm``, ``daily``.
Buckets start full and refill continuously, so a client pacing at the quota is
never throttled. Raising a limit adds the headroom at once (the level moves up by
the change of capacity); lowering one caps the level at the new capacity (halving
a full quota leaves half) and carries no debt over, so the new rate applies from
the change on (a drained bucket stays drained and refills at the new rate, rather
than owing the old quota's last minute); a removed limit forgets its bucket, and
one set again starts full.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from palette.common.quotas import MINUTES_PER_DAY

Reason = Literal["rpm", "tpm", "daily"]
REASONS: tuple[Reason, ...] = ("rpm", "tpm", "daily")
WINDOW_SECONDS: dict[Reason, float] = {"rpm": 60.0, "tpm": 60.0, "daily": 86_400.0}
# Float refill may leave a client pacing exactly at the quota a hair short.
_SLACK = 1e-9


class QuotaLimits(BaseModel):
    """One model id's quotas as the emulator enforces them (None: that one is not)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rpm: float | None = Field(None, ge=0, description="Requests per minute.")
    tpm: float | None = Field(None, ge=0, description="Tokens per minute.")
    tpd: float | None = Field(
        None, ge=0, description="Tokens per day (None: tpm x 1,440 when tpm is set)."
    )
    output_burndown: int | None = Field(
        None, ge=1, description="Quota tokens per output token (None: the quota table's, else 1)."
    )

    def capacities(self) -> dict[Reason, float]:
        """The size of each enforced bucket."""
        sizes: dict[Reason, float | None] = {
            "rpm": self.rpm,
            "tpm": self.tpm,
            "daily": self.tpd if self.tpd is not None else _daily_default(self.tpm),
        }
        return {reason: size for reason, size in sizes.items() if size is not None}


def _daily_default(tpm: float | None) -> float | None:
    return None if tpm is None else tpm * MINUTES_PER_DAY


@dataclass(slots=True)
class TokenBucket:
    """``capacity`` per ``window`` seconds, refilled continuously; may go below zero."""

    capacity: float
    window: float
    updated: float
    level: float

    @classmethod
    def full(cls, capacity: float, window: float, now: float) -> TokenBucket:
        """A bucket holding its whole capacity."""
        return cls(capacity, window, now, capacity)

    def refill(self, now: float) -> None:
        """Add what has flowed in since the last look, up to the capacity."""
        if now > self.updated:
            flowed = (now - self.updated) * self.capacity / self.window
            self.level = min(self.capacity, self.level + flowed)
            self.updated = now

    def holds(self, amount: float) -> bool:
        """Whether ``amount`` can be taken now (after ``refill``)."""
        return amount <= self.level + _SLACK * max(1.0, self.capacity)

    def give_back(self, amount: float) -> None:
        """Return (or, negative, take more) after a correction, never above capacity."""
        self.level = min(self.capacity, self.level + amount)

    def resize(self, capacity: float) -> None:
        """A new capacity: a larger one adds its headroom, a smaller one caps the level."""
        self.level = min(capacity, self.level + max(0.0, capacity - self.capacity))
        self.capacity = capacity


@dataclass(frozen=True, slots=True)
class Throttle:
    """Why a request was refused: the first bucket short and the tokens it asked."""

    model_id: str
    reason: Reason
    tokens: int


class QuotaBuckets:
    """Every model id's buckets; ``admit`` at the start of a call, ``settle`` at its end.

    Args:
        limits: model id to its quotas.
        burndown: the output burndown of a model id whose limits do not set one.
        now: the clock's reading (seconds) the buckets start full at.
    """

    def __init__(
        self,
        limits: Mapping[str, QuotaLimits] | None = None,
        burndown: Callable[[str], int] | None = None,
        now: float = 0.0,
    ) -> None:
        self._burndown = burndown or (lambda _model: 1)
        self.limits: dict[str, QuotaLimits] = {}
        self._buckets: dict[str, dict[Reason, TokenBucket]] = {}
        self.configure(limits or {}, now)

    def configure(self, limits: Mapping[str, QuotaLimits], now: float) -> None:
        """Enforce ``limits`` from now on (see the module's note on changes)."""
        for model_id in set(self._buckets) - set(limits):
            del self._buckets[model_id]
        for model_id, quota in limits.items():
            wanted = quota.capacities()
            buckets = self._buckets.setdefault(model_id, {})
            for reason in set(buckets) - set(wanted):
                del buckets[reason]
            for reason, capacity in wanted.items():
                bucket = buckets.get(reason)
                if bucket is None:
                    buckets[reason] = TokenBucket.full(capacity, WINDOW_SECONDS[reason], now)
                else:
                    bucket.refill(now)
                    bucket.resize(capacity)
        self.limits = dict(limits)

    def enforced(self, model_id: str) -> bool:
        """Whether any quota applies to ``model_id``."""
        return bool(self._buckets.get(model_id))

    def level(self, model_id: str, now: float, reason: Reason = "tpm") -> float | None:
        """What one of ``model_id``'s buckets holds now (None: not enforced)."""
        bucket = self._buckets.get(model_id, {}).get(reason)
        if bucket is None:
            return None
        bucket.refill(now)
        return bucket.level

    def drain(self, model_id: str, now: float) -> None:
        """Empty every bucket of ``model_id`` (one below zero stays there).

        As if the rest of the account had just used all the quota holds: the
        rate a quota allows then binds at once, whatever a client left unused.
        """
        for bucket in self._buckets.get(model_id, {}).values():
            bucket.refill(now)
            bucket.level = min(bucket.level, 0.0)

    def output_burndown(self, model_id: str) -> int:
        """Quota tokens one output token of ``model_id`` uses."""
        quota = self.limits.get(model_id)
        if quota is not None and quota.output_burndown is not None:
            return quota.output_burndown
        return self._burndown(model_id)

    def admit(self, model_id: str, reserve_tokens: int, now: float) -> Throttle | None:
        """Take one request and ``reserve_tokens`` tokens, or nothing and say why not."""
        buckets = self._buckets.get(model_id)
        if not buckets:
            return None
        asks: dict[Reason, float] = {"rpm": 1, "tpm": reserve_tokens, "daily": reserve_tokens}
        for reason in REASONS:
            bucket = buckets.get(reason)
            if bucket is not None:
                bucket.refill(now)
                if not bucket.holds(asks[reason]):
                    return Throttle(model_id, reason, reserve_tokens)
        for reason, bucket in buckets.items():
            bucket.level -= asks[reason]
        return None

    def settle(
        self,
        model_id: str,
        reserved: int,
        input_tokens: int,
        output_tokens: int,
        now: float,
    ) -> int:
        """Correct a reservation to what the call used; returns the quota tokens used."""
        used = input_tokens + output_tokens * self.output_burndown(model_id)
        self._correct(model_id, reserved - used, now)
        return used

    def release(self, model_id: str, reserved: int, now: float) -> None:
        """Give a call's whole token reservation back (it was not billed)."""
        self._correct(model_id, reserved, now)

    def _correct(self, model_id: str, tokens: float, now: float) -> None:
        for reason, bucket in self._buckets.get(model_id, {}).items():
            if reason != "rpm":
                bucket.refill(now)
                bucket.give_back(tokens)

    def status(self, now: float) -> dict[str, dict[str, object]]:
        """Per model id: its limits and each bucket's level now."""
        result: dict[str, dict[str, object]] = {}
        for model_id, buckets in self._buckets.items():
            for bucket in buckets.values():
                bucket.refill(now)
            result[model_id] = {
                **self.limits[model_id].model_dump(),
                "output_burndown": self.output_burndown(model_id),
                "levels": {reason: round(b.level, 3) for reason, b in buckets.items()},
            }
        return result
