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
    "quota",
    "quota_change",
    "unknown_quota",
    "concurrency",
    "batch",
)
"""Every measurement, in the order a run makes them (so generators restart seldom).

``overshoot`` also gives the budget-exhausted stop latency, ``memory`` the export speed.
The quota figures come last: they run the scheduler and accounting on a quota table
of their own (``bench.quota_jobs``) and leave them so.
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
    "quota",
    "unknown",
    "high concurrency",
    "cost per record",
    "CPU per record",
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
    quota_records: int = 3_000
    quota_latency_ms: float = 500.0
    quota_jitter_ms: float = 100.0
    quota_tpm: int = 135_000
    """About 1,500 calls a minute of the one-step template (~42 input, ~48 output tokens):
    3,000 records take about two minutes paced at the quota."""
    quota_rpm: int = 3_000
    """Twice the calls TPM allows: TPM binds."""
    quota_concurrency: int = 32
    quota_generators: tuple[int, ...] = (1, 4)
    quota_change_records: int = 2_400
    quota_change_at: int = 800
    """Records done when the quota is halved."""
    quota_change_hold_s: float = 30.0
    """Seconds the quota stays halved."""
    concurrency: int = 512
    concurrency_latency_ms: float = 2_000.0
    concurrency_records: int = 6_000
    concurrency_partition: int = 500
    batch_records: int = 1_000
    """The job run online at the default tier, online at flex, and in batch mode."""
    batch_partition: int = 500
    """Partitions of the three jobs: each a batch inference job in batch mode."""
    batch_poll_s: float = 0.5
    """How often the generator reads a running batch job's status."""

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
    concurrency_records=2_000,
    batch_records=300,
)
"""About two minutes: every figure but ``QUOTA_FIGURES``, smaller; indicative only."""

QUOTA_FIGURES = ("quota", "quota_change", "unknown_quota")
"""Left out of a quick run unless ``--only`` names them (then at full size): a
quota's bucket holds a minute of it, so a job shorter than a few minutes has no
steady part to measure."""


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
