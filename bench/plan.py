"""How big each measurement is, in a full run and in a quick one (pure: no I/O)."""

from __future__ import annotations

from dataclasses import dataclass, replace

FIGURES = (
    "throughput",
    "overhead",
    "stops",
    "gateway",
    "scaleout",
    "overshoot",
    "memory",
)
"""Every measurement, in the order a run makes them (so generators restart seldom).

``overshoot`` also gives the budget-exhausted stop latency, ``memory`` the export speed.
"""

TABLE_ORDER = (
    "throughput",
    "platform",
    "scale-out",
    "stop",
    "overshoot",
    "gateway",
    "memory",
    "export",
)
"""Rows in the order of the benchmark table (by the start of their names)."""


def table_position(name: str) -> int:
    """Where a figure's row goes in the table (unknown names last)."""
    for position, prefix in enumerate(TABLE_ORDER):
        if name.startswith(prefix):
            return position
    return len(TABLE_ORDER)


@dataclass(frozen=True, slots=True)
class Plan:
    """The sizes of one run. The targets are stated for the full plan."""

    mode: str
    runs: int
    """Repetitions of the throughput, overhead and scale-out measurements (median)."""
    throughput_records: int = 2_000
    throughput_latency_ms: float = 200.0
    throughput_concurrency: int = 32
    overhead_records: int = 2_000
    scaleout_generators: tuple[int, ...] = (1, 2, 4)
    scaleout_concurrency: int = 16
    scaleout_records: int = 2_000
    scaleout_runs: int = 1
    stops: int = 20
    stop_records: int = 2_000
    stop_after_s: float = 0.8
    """How long a job runs (after its first model call) before it is stopped."""
    overshoot_jobs: int = 20
    overshoot_records: int = 200
    overshoot_concurrency: int = 64
    overshoot_latency_ms: float = 40.0
    gateway_rate: float = 200.0
    gateway_seconds: float = 20.0
    memory_small: int = 10_000
    memory_large: int = 100_000

    @property
    def throughput_limit(self) -> float:
        """Records per second the model allows: concurrency / latency."""
        return self.throughput_concurrency / (self.throughput_latency_ms / 1000.0)


FULL = Plan(mode="full", runs=3)

QUICK = replace(
    FULL,
    mode="quick",
    runs=1,
    throughput_records=800,
    scaleout_records=400,
    overhead_records=800,
    stops=5,
    stop_records=600,
    overshoot_jobs=6,
    overshoot_records=120,
    gateway_seconds=4.0,
    memory_small=300,
    memory_large=3_000,
)
"""About two minutes: every figure, smaller; its numbers are indicative only."""


def parse_figures(text: str | None) -> tuple[str, ...]:
    """The figures a comma-separated ``--only`` names, in run order (all when None).

    Raises:
        ValueError: a name that is not one of ``FIGURES``.
    """
    if not text:
        return FIGURES
    wanted = {name.strip() for name in text.split(",") if name.strip()}
    unknown = wanted - set(FIGURES)
    if unknown or not wanted:
        raise ValueError(f"unknown figures {sorted(unknown)}; choose from {', '.join(FIGURES)}")
    return tuple(name for name in FIGURES if name in wanted)
