"""The overhead figure's CPU count includes a service's child processes (render processes)."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from bench.figures.overhead import cpu_seconds

pytestmark = pytest.mark.integration

BURN = """
import sys, time
end = time.process_time() + 0.3
while time.process_time() < end:
    pass
sys.stdin.read()
"""


class TestOverheadCpu:
    def test_a_process_counts_the_cpu_of_its_children_live_and_ended(self) -> None:
        me = psutil.Process()
        before = cpu_seconds({"me": me})["me"]
        child = subprocess.Popen([sys.executable, "-c", BURN], stdin=subprocess.PIPE)
        burned = psutil.Process(child.pid)
        while sum(burned.cpu_times()[:2]) < 0.3:  # it burned its 0.3 s
            time.sleep(0.01)
        live = cpu_seconds({"me": me})["me"]
        child.communicate(b"")  # it ends and is reaped
        ended = cpu_seconds({"me": me})["me"]
        assert live - before >= 0.3
        assert ended - before >= 0.3
