"""``make bench``: measure Plot Palette against its performance targets.

``python -m bench`` (full, about 10 minutes on 2 cores) or ``python -m bench
--quick`` (about 2). It starts the dev stack and the services as processes,
makes every measurement, prints one table (figure, value, target, result),
writes the run to ``bench/results/latest.json`` and, after a complete full run,
puts the table and the machine into ``docs/benchmarks.md``. Exit status 1 when
a target is missed or a measurement could not be made.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import os
import signal
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

from bench import machine
from bench.plan import (
    FIGURES,
    FULL,
    QUICK,
    QUOTA_FIGURES,
    Plan,
    parse_figures,
    table_position,
)
from bench.profiling import Profiler
from bench.report import Figure, Run, render_markdown, render_table, update_doc
from bench.rig import DEFAULT_VHOST, Rig
from palette.common.heap import freeze_startup_heap

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "latest.json"
DOC = ROOT / "docs" / "benchmarks.md"
PROFILES = ROOT / "bench" / "results" / "profiles"


def load_summary(load: dict[str, object]) -> str:
    """How busy other programs kept the machine, in words."""
    share = float(str(load.get("others_share", 0)))
    verdict = "BUSY: absolute figures are noisy" if load.get("busy") else "quiet"
    return (
        f"{verdict} (other programs used {share:.0%} of the CPU during the run; "
        f"load average {load.get('load_after')})"
    )


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Plan, tuple[str, ...]]:
    """The flags, the plan they choose and the figures to measure."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, about 2 minutes")
    parser.add_argument("--only", help="comma-separated figures: " + ", ".join(FIGURES))
    parser.add_argument("--runs", type=int, help="repetitions to take the median of")
    parser.add_argument(
        "--vhost",
        default=os.environ.get("PALETTE_BENCH_VHOST", DEFAULT_VHOST),
        help="RabbitMQ virtual host (kept; its queues are emptied first)",
    )
    parser.add_argument("--keep-logs", action="store_true", help="keep the services' logs")
    parser.add_argument("--no-docs", action="store_true", help="leave docs/benchmarks.md alone")
    parser.add_argument(
        "--profile",
        default="",
        help="comma-separated services (gateway, generator, generator-0, ...) to sample with "
        f"py-spy into {PROFILES.relative_to(ROOT)}/ (uv sync --group bench first)",
    )
    args = parser.parse_args(argv)
    try:
        names = parse_figures(args.only)
    except ValueError as exc:
        parser.error(str(exc))
    plan = QUICK if args.quick else FULL
    if args.quick and not args.only:
        names = tuple(name for name in names if name not in QUOTA_FIGURES)
    if args.runs is not None:
        if args.runs < 1:
            parser.error("--runs must be at least 1")
        plan = dataclasses.replace(plan, runs=args.runs)
    return args, plan, names


def write_results(run: Run) -> None:
    """Write the run (so far) to ``bench/results/latest.json``."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(run.to_json(), indent=2) + "\n", encoding="utf-8")


def measure(rig: Rig, plan: Plan, names: tuple[str, ...], run: Run) -> None:
    """Every figure of ``names`` into ``run``; one that fails is an error, the others go on.

    The results so far are written after each measurement, so a run stopped
    half way still leaves what it measured.
    """
    clock = time.monotonic()
    for name in names:
        module = importlib.import_module(f"bench.figures.{name}")
        started = time.monotonic()
        try:
            rig.fresh_database()
            rows: list[Figure] = module.run(rig, plan)
        except Exception as exc:
            traceback.print_exc()
            run.errors.append(f"{name}: {type(exc).__name__}: {exc}")
            rows = []
        run.seconds[name] = time.monotonic() - started
        run.figures = sorted([*run.figures, *rows], key=lambda f: table_position(f.name))
        run.duration_s = time.monotonic() - clock
        write_results(run)
        shown = ", ".join(f"{f.name} {f.shown_value()}" for f in rows) or "not measured"
        print(f"[{time.monotonic() - clock:5.0f} s] {name}: {shown}", flush=True)


def stop_on_sigterm() -> None:
    """SIGTERM (``timeout``, a CI runner) ends the run like Ctrl-C: everything started stops."""

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; 0 when every target is met."""
    args, plan, names = parse_args(argv)
    stop_on_sigterm()
    started = datetime.now(UTC)
    clock = time.monotonic()
    facts = machine.describe()
    meter = machine.LoadMeter().start()
    targets = [name.strip() for name in args.profile.split(",") if name.strip()]
    profiler = Profiler(targets, PROFILES) if targets else None
    rig = Rig(args.vhost, keep_logs=args.keep_logs, profiler=profiler)
    run = Run(plan.mode, facts, started.isoformat(timespec="seconds"), 0.0, [], complete=False)
    try:
        rig.start()
        # The harness takes the stop moments and receives the BudgetExceeded
        # events: a full collection of its start-up heap (100-380 ms measured)
        # would land inside the latencies it measures.
        freeze_startup_heap()
        run.seconds["start"] = time.monotonic() - clock
        print(f"[{time.monotonic() - clock:5.0f} s] stack and services up", flush=True)
        measure(rig, plan, names, run)
    except BaseException:
        run.errors.append("the run was interrupted")
        raise
    finally:
        rig.stop(failed=bool(run.errors))
        if run.errors or args.keep_logs:
            print(f"logs kept in {rig.state_dir}", file=sys.stderr)
        facts["load"] = meter.stop()
        facts["load_summary"] = load_summary(facts["load"])
        run.duration_s = time.monotonic() - clock
        run.complete = not run.errors
        write_results(run)
    print()
    print(render_table(run.figures))
    for figure in run.figures:
        if figure.broken and figure.passed is False:
            print(f"{figure.name}: FAIL because {figure.broken}")
    for error in run.errors:
        print(f"not measured: {error}")
    print(f"\n{plan.mode} run, {run.duration_s:.0f} s; machine {facts['load_summary']}")
    print(f"wrote {RESULTS.relative_to(ROOT)}")
    if plan.mode == "full" and not args.only and not args.no_docs and run.complete:
        DOC.write_text(update_doc(DOC.read_text(encoding="utf-8"), render_markdown(run)))
        print(f"updated {DOC.relative_to(ROOT)}")
    return 0 if run.passed else 1


if __name__ == "__main__":
    sys.exit(main())
