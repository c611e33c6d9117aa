"""Figures, their targets, and how a run is shown: the table, the JSON, the docs page.

Pure: no I/O. ``bench.__main__`` prints ``render_table``, writes ``to_json`` to
``bench/results/latest.json`` and puts ``render_markdown`` into
``docs/benchmarks.md`` between the two ``RESULTS_*`` markers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Comparison = Literal[">=", "<=", "==", "report"]

RESULTS_START = "<!-- bench:results:start -->"
RESULTS_END = "<!-- bench:results:end -->"


@dataclass(frozen=True, slots=True)
class Target:
    """What a figure must reach: ``value <comparison> bound`` (``report``: nothing)."""

    comparison: Comparison
    bound: float = 0.0

    def met_by(self, value: float | None) -> bool | None:
        """True or False against the bound; None for a figure that is only reported.

        A figure that could not be measured (None, NaN) misses its target.
        """
        if self.comparison == "report":
            return None
        if value is None or math.isnan(value):
            return False
        if self.comparison == ">=":
            return value >= self.bound
        if self.comparison == "<=":
            return value <= self.bound
        return value == self.bound

    def describe(self, unit: str = "") -> str:
        """The target as the table shows it, e.g. ``>= 0.95`` or ``<= 25 ms``."""
        if self.comparison == "report":
            return "report"
        suffix = f" {unit}" if unit else ""
        return f"{self.comparison} {format_number(self.bound)}{suffix}"


@dataclass(slots=True)
class Figure:
    """One row of the table: a measured value, its target, and how it was obtained."""

    name: str
    value: float | None
    target: Target
    unit: str = ""
    runs: list[float] = field(default_factory=list)
    """The value of every run the reported value summarises (e.g. its median)."""
    details: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    broken: str = ""
    """A condition of the measurement that did not hold (e.g. the job failed): a miss."""

    @property
    def passed(self) -> bool | None:
        """Whether the target is met (None: reported only); never when ``broken``."""
        if self.broken and self.target.comparison != "report":
            return False
        return self.target.met_by(self.value)

    @property
    def verdict(self) -> str:
        """``pass``, ``FAIL`` or ``-`` (reported only)."""
        passed = self.passed
        if passed is None:
            return "-"
        return "pass" if passed else "FAIL"

    def shown_value(self) -> str:
        """The value with its unit, or ``not measured``."""
        if self.value is None or math.isnan(self.value):
            return "not measured"
        return f"{format_number(self.value)}{' ' + self.unit if self.unit else ''}"

    def to_dict(self) -> dict[str, Any]:
        """As JSON."""
        return {
            "name": self.name,
            "value": None if self.value is None or math.isnan(self.value) else self.value,
            "unit": self.unit,
            "target": self.target.describe(self.unit),
            "passed": self.passed,
            "runs": self.runs,
            "details": self.details,
            "note": self.note,
            "broken": self.broken,
        }


def format_number(value: float) -> str:
    """Three significant digits, without a trailing ``.0`` on whole numbers."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


@dataclass(slots=True)
class Run:
    """A whole benchmark run."""

    mode: str
    machine: dict[str, Any]
    started_at: str
    duration_s: float
    figures: list[Figure]
    errors: list[str] = field(default_factory=list)
    """Figures that could not be measured, with the reason."""
    seconds: dict[str, float] = field(default_factory=dict)
    """How long each measurement took."""
    complete: bool = True
    """False while the run is still going (the JSON is written after each measurement)."""

    @property
    def passed(self) -> bool:
        """Every target is met (reported-only figures aside) and nothing failed to run."""
        return not self.errors and all(f.passed is not False for f in self.figures)

    def to_json(self) -> dict[str, Any]:
        """The run as a JSON object."""
        return {
            "mode": self.mode,
            "started_at": self.started_at,
            "duration_s": round(self.duration_s, 1),
            "complete": self.complete,
            "passed": self.passed,
            "seconds": {name: round(value, 1) for name, value in self.seconds.items()},
            "machine": self.machine,
            "figures": [f.to_dict() for f in self.figures],
            "errors": self.errors,
        }


def _rows(figures: Sequence[Figure]) -> list[tuple[str, str, str, str]]:
    return [(f.name, f.shown_value(), f.target.describe(f.unit), f.verdict) for f in figures]


def render_table(figures: Sequence[Figure]) -> str:
    """The plain-text table: figure, value, target, pass/fail."""
    header = ("figure", "value", "target", "result")
    rows = [header, *_rows(figures)]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = []
    for k, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())
        if k == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(run: Run) -> str:
    """The results section of ``docs/benchmarks.md``: machine, then the table and notes."""
    m = run.machine
    took = ", ".join(f"{name} {value:.0f} s" for name, value in run.seconds.items())
    lines = [
        f"Last full run: {run.started_at} ({run.mode}, {run.duration_s:.0f} s: {took}).",
        "",
        f"- CPU: {m.get('cpu_model', '?')}, {m.get('cores', '?')} cores",
        f"- Memory: {m.get('memory_gib', '?')} GiB",
        f"- Python: {m.get('python', '?')}, {m.get('platform', '?')}",
        f"- Machine load: {m.get('load_summary', 'not measured')}",
        "",
        "| figure | value | target | result |",
        "|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in _rows(run.figures)]
    notes = [
        f"- **{f.name}**: {f.note}" + (f" (miss: {f.broken})" if f.broken else "")
        for f in run.figures
        if f.note
    ]
    if notes:
        lines += ["", *notes]
    if run.errors:
        lines += ["", "Not measured:", *(f"- {e}" for e in run.errors)]
    return "\n".join(lines)


def update_doc(text: str, section: str) -> str:
    """Replace what lies between the results markers of ``text`` with ``section``.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start, end = text.find(RESULTS_START), text.find(RESULTS_END)
    if start < 0 or end < start:
        raise ValueError(f"the page lacks the markers {RESULTS_START} ... {RESULTS_END}")
    head = text[: start + len(RESULTS_START)]
    return f"{head}\n{section}\n{text[end:]}"
