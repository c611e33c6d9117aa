"""Token usage tallies per (step, model), and their compact encoding.

Pure logic, no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from palette.common.messages import RetryCounts, StepUsage
from palette.common.pricing import PricingTable
from palette.common.service_tiers import Rate, ServiceTier, rated_table


class UsageTally:
    """Calls and tokens per (step id, model id), in first-seen order.

    A row counts ``[calls, input, output, cache_read, cache_write]`` tokens; the
    key's rate is "" for calls billed at the attempt's rate, else their own.
    """

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, str], list[int]] = {}

    def add(
        self,
        step_id: str,
        model_id: str,
        input_tokens: int,
        output_tokens: int,
        calls: int = 1,
        cache_read: int = 0,
        cache_write: int = 0,
        *,
        rate: str = "",
    ) -> None:
        """Count ``calls`` calls of a step with their tokens.

        ``cache_read``, ``cache_write``: input tokens read from and written to the
        prompt cache (not in ``input_tokens``). ``rate``: the rate they were billed
        at when not the attempt's own (a batch-mode partition's online calls:
        ``default``); "" is the attempt's.
        """
        row = self._rows.setdefault((step_id, model_id, rate), [0, 0, 0, 0, 0])
        for index, value in enumerate(
            (calls, input_tokens, output_tokens, cache_read, cache_write)
        ):
            row[index] += value

    def merge(self, other: UsageTally | Iterable[StepUsage]) -> None:
        """Add another tally (or StepUsage rows) to this one."""
        if isinstance(other, UsageTally):
            for (s, m, r), (c, i, o, cr, cw) in other._rows.items():
                self.add(s, m, i, o, c, cr, cw, rate=r)
            return
        for u in other:
            self.add(
                u.step_id,
                u.model_id,
                u.input_tokens,
                u.output_tokens,
                u.calls,
                u.cache_read_tokens,
                u.cache_write_tokens,
            )

    def take(self) -> UsageTally:
        """Move everything into a new tally, leaving this one empty."""
        moved = UsageTally()
        moved._rows, self._rows = self._rows, {}
        return moved

    def to_step_usages(self, tier: Rate = ServiceTier.DEFAULT) -> tuple[StepUsage, ...]:
        """As message rows, of calls billed at ``tier`` (the attempt's rate) or their own."""
        return tuple(
            StepUsage(
                step_id=s,
                model_id=m,
                calls=c,
                input_tokens=i,
                output_tokens=o,
                cache_read_tokens=cr,
                cache_write_tokens=cw,
                service_tier=r or tier,
            )
            for (s, m, r), (c, i, o, cr, cw) in self._rows.items()
        )

    def cost(self, pricing: PricingTable, full: PricingTable | None = None) -> int:
        """Exact cost in picodollars at ``pricing`` (a tier's: ``service_tiers.rated_table``).

        Rows billed at a rate of their own are priced at it in ``full`` (the whole
        table). Cache reads and writes are at their prices. UnknownModelError for a
        model without price there.
        """
        return sum(
            (rated_table(full, r) if r and full is not None else pricing).cost(m, i, o, cr, cw)
            for (_, m, r), (_, i, o, cr, cw) in self._rows.items()
        )

    @property
    def calls(self) -> int:
        """Number of billed calls."""
        return sum(row[0] for row in self._rows.values())

    def encode(self) -> str:
        """Compact ASCII JSON ``[[step, model, calls, in, out(, cr, cw)(, rate)], ...]``.

        ``cr``, ``cw``: tokens read from and written to the prompt cache.
        The cache counts are left out of a row that has none, the rate out of a
        row billed at the attempt's own. So rows of 5 numbers and names (before
        either), 6 (a rate) and 7 (cache counts) read as they always did.
        """
        rows = [
            [s, m, *(counts if any(counts[3:]) else counts[:3]), *([r] if r else [])]
            for (s, m, r), counts in self._rows.items()
        ]
        return json.dumps(rows, separators=(",", ":"), ensure_ascii=True)

    @classmethod
    def decode(cls, text: str) -> UsageTally:
        """Parse ``encode``'s output; ValueError when it is not that shape."""
        tally = cls()
        rows = json.loads(text)
        if not isinstance(rows, list):
            raise ValueError("usage must be a JSON list")
        for row in rows:
            if not (
                isinstance(row, list)
                and len(row) in (5, 6, 7, 8)
                and all(isinstance(v, str) for v in row[:2])
                and all(isinstance(v, int) and v >= 0 for v in _counts(row))
                and len(_counts(row)) in (3, 5)
            ):
                raise ValueError(f"bad usage row {row!r}")
            counts = _counts(row)
            rate = row[-1] if isinstance(row[-1], str) else ""
            tally.add(row[0], row[1], counts[1], counts[2], counts[0], *counts[3:], rate=rate)
        return tally

    def __bool__(self) -> bool:
        return bool(self._rows)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, UsageTally):
            return NotImplemented
        return self._rows == other._rows

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"UsageTally({self.encode()})"


def _counts(row: list[Any]) -> list[Any]:
    """A usage row's numbers: calls, input, output (, cache read, cache write)."""
    return row[2:-1] if isinstance(row[-1], str) else row[2:]


class RetryTally:
    """Throttled and retried model-call attempts and time waited for quota (``RetryCounts``)."""

    __slots__ = ("retried", "throttled", "waited_ms")

    def __init__(self, throttled: int = 0, retried: int = 0, waited_ms: int = 0) -> None:
        self.throttled = throttled
        self.retried = retried
        self.waited_ms = waited_ms

    def merge(self, other: RetryTally) -> None:
        """Add another tally to this one."""
        self.throttled += other.throttled
        self.retried += other.retried
        self.waited_ms += other.waited_ms

    def take(self) -> RetryTally:
        """Move the counts into a new tally, leaving this one at zero."""
        moved = RetryTally(self.throttled, self.retried, self.waited_ms)
        self.throttled = self.retried = self.waited_ms = 0
        return moved

    def to_counts(self) -> RetryCounts:
        """As a message field."""
        return RetryCounts(throttled=self.throttled, retried=self.retried, waited_ms=self.waited_ms)

    def encode(self) -> str:
        """``throttled,retried,waited_ms`` (S3 user metadata)."""
        return f"{self.throttled},{self.retried},{self.waited_ms}"

    @classmethod
    def decode(cls, text: str) -> RetryTally:
        """Parse ``encode``'s output (or the older two counts); ValueError otherwise."""
        fields = text.split(",")
        if len(fields) not in (2, 3) or not all(f.isdigit() for f in fields):
            raise ValueError(f"bad retry counts {text!r}")
        return cls(*(int(f) for f in fields))

    def __bool__(self) -> bool:
        return bool(self.throttled or self.retried or self.waited_ms)

    def _key(self) -> tuple[int, int, int]:
        return (self.throttled, self.retried, self.waited_ms)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RetryTally):
            return NotImplemented
        return self._key() == other._key()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"RetryTally(throttled={self.throttled}, retried={self.retried}, "
            f"waited_ms={self.waited_ms})"
        )
