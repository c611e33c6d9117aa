"""Paced callers against the emulator's quota buckets on a simulated clock: no I/O, no sleep.

What the pacing tests and the bench's quota change simulation (``bench.quota_change_sim``)
share. Each tick of the clock, calls whose time is up end (an answered call settles
its reservation with the buckets and its pacer; a throttled one tells its pacer), then
every pacer starts calls while it has a free worker and its bucket lets it, and the
clock moves one tick on. A call the buckets refuse is throttled at once and its caller
hears of it one tick later; an admitted one takes ``latency`` plus up to ``jitter``
seconds. ``noise`` throttles that share of calls at random, whatever the rate (as the
emulator's fault injection does). A pacer here is anything with the generator's
``ModelPacer`` methods ``try_take``, ``settle`` and ``throttled``.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from palette.devstack.quota_buckets import QuotaBuckets

MODEL = "m"


class Pacer(Protocol):
    """The part of the generator's ``ModelPacer`` a simulated call uses."""

    def try_take(self, tokens: int) -> Any:
        """A reservation of ``tokens``, or None when the caller must wait."""

    def settle(self, ticket: Any, input_tokens: int, output_tokens: int) -> Any:
        """The call was answered with this usage."""

    def throttled(self, ticket: Any) -> Any:
        """The call was throttled."""


class SimClock:
    """The simulated monotonic clock (seconds); pacers take it as their ``clock``."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        """The simulated time."""
        return self.now


@dataclass(frozen=True, slots=True)
class CallShape:
    """The calls every pacer makes: what each asks, reserves and uses, and how long it takes."""

    ask: int
    """Tokens the pacer takes for a call (its input bound plus ``maxTokens``)."""
    reserve: int
    """Tokens Bedrock reserves when the call starts (input tokens plus ``maxTokens``)."""
    input_tokens: int
    output_tokens: int
    latency: float = 0.5
    jitter: float = 0.0


@dataclass(slots=True)
class SimCall:
    """A call in flight: when it ends, its reservation, its pacer, whether throttled."""

    ends: float
    ticket: Any
    pacer: Pacer
    throttled: bool


class SimulatedBedrock:
    """One model's quota buckets and the calls in flight against them.

    ``admitted``, ``throttled`` and ``used`` (quota tokens of answered calls) count
    from the start; ``step`` moves the clock by ``tick``.
    """

    def __init__(
        self,
        clock: SimClock,
        buckets: QuotaBuckets,
        shape: CallShape,
        *,
        noise: float = 0.0,
        seed: int = 7,
        tick: float = 0.01,
    ) -> None:
        self.clock = clock
        self.buckets = buckets
        self.shape = shape
        self.noise = noise
        self.tick = tick
        self.random = random.Random(seed)  # noqa: S311 - jitter and noise, not a secret
        self.busy: list[SimCall] = []
        self.admitted = 0
        self.throttled = 0
        self.used = 0

    def run(self, pacers: Sequence[Pacer], seconds: float, workers: int) -> None:
        """``step`` for ``seconds`` of simulated time."""
        end = self.clock.now + seconds
        while self.clock.now < end:
            self.step(pacers, workers)

    def step(self, pacers: Sequence[Pacer], workers: int) -> None:
        """One tick: calls due end, each pacer starts up to ``workers`` in flight, time moves."""
        self._end_calls()
        self._start_calls(pacers, workers)
        self.clock.now += self.tick

    def _end_calls(self) -> None:
        shape, now = self.shape, self.clock.now
        still: list[SimCall] = []
        for call in self.busy:
            if call.ends > now:
                still.append(call)
            elif call.throttled:
                call.pacer.throttled(call.ticket)
            else:
                self.used += self.buckets.settle(
                    MODEL, shape.reserve, shape.input_tokens, shape.output_tokens, now
                )
                call.pacer.settle(call.ticket, shape.input_tokens, shape.output_tokens)
        self.busy = still

    def _start_calls(self, pacers: Sequence[Pacer], workers: int) -> None:
        shape, now = self.shape, self.clock.now
        in_flight = Counter(id(call.pacer) for call in self.busy)
        for pacer in pacers:
            for _ in range(workers - in_flight[id(pacer)]):
                ticket = pacer.try_take(shape.ask)
                if ticket is None:
                    break
                noisy = self.noise and self.random.random() < self.noise
                if noisy or self.buckets.admit(MODEL, shape.reserve, now) is not None:
                    self.throttled += 1
                    self.busy.append(SimCall(now + self.tick, ticket, pacer, True))
                    continue
                self.admitted += 1
                took = shape.latency + (self.random.random() * shape.jitter if shape.jitter else 0)
                self.busy.append(SimCall(now + took, ticket, pacer, False))
