"""The machine a run is made on, and how busy other programs kept it meanwhile."""

from __future__ import annotations

import os
import platform
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil

BUSY_SHARE = 0.10
"""Share of the machine's CPU used by others above which a run counts as busy."""


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), or the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def describe() -> dict[str, Any]:
    """CPU model, cores, memory, Python and OS, and the date."""
    return {
        "cpu_model": cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "date": datetime.now(UTC).date().isoformat(),
        "load_before": [round(x, 2) for x in os.getloadavg()],
    }


class LoadMeter:
    """How much CPU programs other than this run used while it ran.

    Samples every second: the machine's busy CPU time, minus that of this
    process and its descendants and of the RabbitMQ server (which works for
    this run). What is left is other people's work.
    """

    def __init__(self, interval: float = 1.0) -> None:
        self._interval = interval
        self._own: dict[int, float] = {}
        self._broker: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="load-meter", daemon=True)
        self._start_busy = 0.0
        self._start_wall = 0.0
        self._start_own = 0.0
        self._start_broker = 0.0
        self.summary: dict[str, Any] = {}

    @staticmethod
    def _busy() -> float:
        times = psutil.cpu_times()
        return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))

    @staticmethod
    def _cpu(process: psutil.Process) -> float:
        times = process.cpu_times()
        return float(times.user + times.system)

    def _sample(self) -> None:
        # A child that exited and was reaped is counted in this process's
        # children_* times from then on, so only live children are summed.
        me = psutil.Process()
        mine = me.cpu_times()
        own = {me.pid: mine.user + mine.system + mine.children_user + mine.children_system}
        for process in me.children(recursive=True):
            try:
                own[process.pid] = self._cpu(process)
            except psutil.Error:
                continue
        self._own = own
        for process in psutil.process_iter(["name"]):
            if process.info["name"] == "beam.smp":
                try:
                    self._broker[process.pid] = self._cpu(process)
                except psutil.Error:
                    continue

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def start(self) -> LoadMeter:
        """Take the first sample and keep sampling in the background."""
        self._sample()
        self._start_busy, self._start_wall = self._busy(), time.monotonic()
        self._start_own = sum(self._own.values())
        self._start_broker = sum(self._broker.values())
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        """Stop sampling; the share of the machine others used, and whether it was busy."""
        self._stop.set()
        self._thread.join()
        self._sample()
        wall = time.monotonic() - self._start_wall
        capacity = wall * (os.cpu_count() or 1)
        own = sum(self._own.values()) - self._start_own
        broker = sum(self._broker.values()) - self._start_broker
        others = max(0.0, self._busy() - self._start_busy - own - broker)
        share = others / capacity if capacity else 0.0
        self.summary = {
            "wall_s": round(wall, 1),
            "own_cpu_s": round(own, 1),
            "broker_cpu_s": round(broker, 1),
            "others_cpu_s": round(others, 1),
            "others_share": round(share, 3),
            "busy": share > BUSY_SHARE,
            "load_after": [round(x, 2) for x in os.getloadavg()],
        }
        return self.summary
