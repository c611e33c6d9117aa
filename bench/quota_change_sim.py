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
import statistics
from collections import defaultdict
from dataclasses import dataclass

import structlog

from bench.quota import MIN_REST_SECONDS, Second, Window, recovery_seconds
from palette.devstack.quota_buckets import QuotaBuckets, QuotaLimits
from palette.devstack.quota_sim import MODEL, CallShape, SimClock, SimulatedBedrock
from palette.generator.pacing import AimdParams, fair_shares
from palette.generator.quota_pacer import ModelPacer

TPM, RPM = 135_000.0, 3_000.0
GENERATORS, WORKERS = 4, 32
INPUT, OUTPUT, ASK = 30, 60, 120 + 64
SHAPE = CallShape(ask=ASK, reserve=ASK, input_tokens=INPUT, output_tokens=OUTPUT, jitter=0.1)
TARGET = 0.98
TICK = 0.01
BOUND = 0.02


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
    """One run of the scenario with one seed (``palette.devstack.quota_sim``)."""

    def __init__(self, seed: int, params: AimdParams) -> None:
        clock = SimClock()
        buckets = QuotaBuckets({MODEL: QuotaLimits(tpm=TPM, rpm=RPM)}, now=clock.now)
        self.bedrock = SimulatedBedrock(clock, buckets, SHAPE, seed=seed, tick=TICK)
        self.pacers = [
            ModelPacer(MODEL, TPM, RPM, 1, TARGET, clock=clock, params=params)
            for _ in range(GENERATORS)
        ]
        shares = fair_shares(TPM * TARGET, {str(k): None for k in range(GENERATORS)})
        for pacer, share in zip(self.pacers, shares.values(), strict=True):
            pacer.set_share(share, GENERATORS)
        self.rows: defaultdict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
        """Per second: admitted, throttled, quota tokens used."""

    def run(self, before: int, phase: int, after: int) -> Outcome:
        """The whole scenario; its recoveries by the figure's rule."""
        bedrock = self.bedrock
        changes = {before: TPM / 2, before + phase: TPM}
        total = before + phase + after
        for tick in range(int(total / TICK)):
            second = int(tick * TICK)
            if second in changes:
                tpm = changes.pop(second)
                limits = QuotaLimits(tpm=tpm, rpm=RPM * tpm / TPM)
                bedrock.buckets.configure({MODEL: limits}, bedrock.clock.now)
                bedrock.buckets.drain(MODEL, bedrock.clock.now)
            counts = (bedrock.admitted, bedrock.throttled, bedrock.used)
            bedrock.step(self.pacers, WORKERS)
            now = (bedrock.admitted, bedrock.throttled, bedrock.used)
            row = self.rows[second]
            for k in range(3):
                row[k] += now[k] - counts[k]
        rows = [Second(t, a, th, u, None) for t, (a, th, u) in sorted(self.rows.items())]
        used = sum(r.used for r in rows if before + phase - 20 <= r.t < before + phase)
        climbed = sum(r.used for r in rows if r.t >= before + phase)
        return Outcome(
            recovery_seconds(rows, Window(before + 1, before + phase), BOUND),
            recovery_seconds(rows, Window(before + phase + 1, total), BOUND),
            used * 3 / (TPM / 2),
            climbed * 60 / after / TPM,
        )


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
