"""The quota change figure simulated: the generators' pacers against the emulator's buckets.

``uv run --group bench python -m bench.quota_change_sim [--seeds N] [--near F]`` runs
the figure's scenario on a simulated clock (10-ms ticks, no processes, no I/O), one
run per seed, and prints each run's recovery from the halving and from the restore,
by the figure's own rule (``bench.quota.recovery_seconds``). It runs four
``ModelPacer`` of the generator (the table's quota shared equally at the target, as
``quota_shares`` gives it to four generators that all wait) against the emulator's
``QuotaBuckets``: TPM 135,000 and RPM 3,000, halved with the buckets drained after
``--before`` seconds, restored ``--phase`` seconds later, run ``--after`` seconds more
(the climb: the restored quota used then). Calls use 30 tokens in and
60 out, ask for an input bound of 120 plus ``maxTokens`` 64, and take 0.5 s plus up
to 0.1 s of jitter; each generator keeps up to 32 in flight; a throttle reaches its
caller one tick later. ``--near`` runs the same with another ``AimdParams.near_shared``
(the recovery target of generators that share a quota).

A simulation, not the figure: the real generators also sync their shares every
second, wait in a queue rather than retry on the next tick, and share two cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import random
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass

import structlog

from bench.quota import MIN_REST_SECONDS, Second, Window, recovery_seconds
from palette.devstack.quota_buckets import QuotaBuckets, QuotaLimits
from palette.generator.pacing import AimdParams, Ticket, fair_shares
from palette.generator.quota_pacer import ModelPacer

TPM, RPM = 135_000.0, 3_000.0
GENERATORS, WORKERS = 4, 32
INPUT, OUTPUT, ASK = 30, 60, 120 + 64
TARGET = 0.98
TICK = 0.01
BOUND = 0.02


class Clock:
    """The simulated monotonic clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        """The simulated time (seconds)."""
        return self.now


@dataclass(slots=True)
class Call:
    """A call in flight: when it ends, its reservation, its pacer, whether throttled."""

    ends: float
    ticket: Ticket
    pacer: ModelPacer
    throttled: bool


@dataclass(frozen=True, slots=True)
class Outcome:
    """One run: seconds to recover from the halving and from the restore (None: never)."""

    halved: int | None
    restored: int | None
    fill: float
    """Tokens used per minute in the halved phase's last 20 s, over the halved quota."""
    climb: float
    """Tokens used per minute after the restore (to the end), over the whole quota."""


class Simulation:
    """One run of the scenario with one seed."""

    def __init__(self, seed: int, params: AimdParams) -> None:
        self.random = random.Random(seed)  # noqa: S311 - the calls' jitter, not a secret
        self.clock = Clock()
        self.buckets = QuotaBuckets({"m": QuotaLimits(tpm=TPM, rpm=RPM)}, now=self.clock.now)
        self.pacers = [
            ModelPacer("m", TPM, RPM, 1, TARGET, clock=self.clock, params=params)
            for _ in range(GENERATORS)
        ]
        shares = fair_shares(TPM * TARGET, {str(k): None for k in range(GENERATORS)})
        for pacer, share in zip(self.pacers, shares.values(), strict=True):
            pacer.set_share(share, GENERATORS)
        self.busy: list[Call] = []
        self.rows: defaultdict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
        """Per second: admitted, throttled, quota tokens used."""

    def run(self, before: int, phase: int, after: int) -> Outcome:
        """The whole scenario; its recoveries by the figure's rule."""
        changes = {before: TPM / 2, before + phase: TPM}
        total = before + phase + after
        for tick in range(int(total / TICK)):
            second = int(tick * TICK)
            if second in changes:
                tpm = changes.pop(second)
                limits = QuotaLimits(tpm=tpm, rpm=RPM * tpm / TPM)
                self.buckets.configure({"m": limits}, self.clock.now)
                self.buckets.drain("m", self.clock.now)
            self._end_calls(second)
            self._start_calls(second)
            self.clock.now += TICK
        rows = [Second(t, a, th, u, None) for t, (a, th, u) in sorted(self.rows.items())]
        used = sum(r.used for r in rows if before + phase - 20 <= r.t < before + phase)
        climbed = sum(r.used for r in rows if r.t >= before + phase)
        return Outcome(
            recovery_seconds(rows, Window(before + 1, before + phase), BOUND),
            recovery_seconds(rows, Window(before + phase + 1, total), BOUND),
            used * 3 / (TPM / 2),
            climbed * 60 / after / TPM,
        )

    def _end_calls(self, second: int) -> None:
        still: list[Call] = []
        for call in self.busy:
            if call.ends > self.clock.now:
                still.append(call)
            elif call.throttled:
                call.pacer.throttled(call.ticket)
            else:
                self.rows[second][2] += self.buckets.settle("m", ASK, INPUT, OUTPUT, self.clock.now)
                call.pacer.settle(call.ticket, INPUT, OUTPUT)
        self.busy = still

    def _start_calls(self, second: int) -> None:
        in_flight = Counter(id(call.pacer) for call in self.busy)
        for pacer in self.pacers:
            for _ in range(WORKERS - in_flight[id(pacer)]):
                ticket = pacer.try_take(ASK)
                if ticket is None:
                    break
                if self.buckets.admit("m", ASK, self.clock.now) is not None:
                    self.rows[second][1] += 1
                    self.busy.append(Call(self.clock.now + TICK, ticket, pacer, True))
                else:
                    self.rows[second][0] += 1
                    ends = self.clock.now + 0.5 + self.random.random() * 0.1
                    self.busy.append(Call(ends, ticket, pacer, False))


def main(argv: list[str] | None = None) -> None:
    """Run the seeds and print each run's recoveries and their median."""
    parser = argparse.ArgumentParser(prog="python -m bench.quota_change_sim")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--near", type=float, default=AimdParams().near_shared)
    parser.add_argument("--before", type=int, default=40)
    parser.add_argument("--phase", type=int, default=30)
    parser.add_argument("--after", type=int, default=60)
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.before < 1:
        parser.error("--seeds and --before must be at least 1")
    if min(args.phase, args.after) <= MIN_REST_SECONDS:
        parser.error(f"--phase and --after must be more than {MIN_REST_SECONDS} s (the 2 % rule)")
    if not 0 < args.near <= 1:
        parser.error("--near must be a fraction of the ceiling in (0, 1]")
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    params = dataclasses.replace(AimdParams(), near_shared=args.near)
    runs = [
        Simulation(seed, params).run(args.before, args.phase, args.after)
        for seed in range(args.seeds)
    ]
    never = args.phase  # a phase never recovered counts as its whole length
    halved = [never if r.halved is None else r.halved for r in runs]
    print("seed  halving  restore  fill (halved, last 20 s)  climb (restored quota used)")
    for seed, r in enumerate(runs):
        print(
            f"{seed:4d}  {_shown(r.halved):>7}  {_shown(r.restored):>7}  {r.fill:24.3f}  "
            f"{r.climb:.3f}"
        )
    within = sum(1 for h in halved if h <= 10)
    print(
        f"halving: median {statistics.median(halved)} s, within 10 s in {within} of "
        f"{len(runs)}; fill median {statistics.median(r.fill for r in runs):.3f}; "
        f"climb after the restore median {statistics.median(r.climb for r in runs):.3f}"
    )


def _shown(seconds: int | None) -> str:
    return "never" if seconds is None else f"{seconds} s"


if __name__ == "__main__":
    main()
