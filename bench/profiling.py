"""Sampling profiles of service processes during a run (py-spy), and their summary.

``python -m bench --only overhead --profile generator`` attaches
``py-spy record`` (the ``bench`` dependency group) to every generator process
the run starts and writes its collapsed stacks to
``bench/results/profiles/<instance>-<pid>.txt``; ``python -m bench.profiling
FILE`` prints the functions taking the largest share of the samples. Only the
thread holding the GIL is sampled: the profile shows where Python spends CPU.
"""

from __future__ import annotations

import argparse
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from palette.devstack.services import ServiceProcess

RATE_HZ = 100
_LOCATION = re.compile(r" \((?:.*/(?:site-packages|src|python3\.\d+)/)?(.*?):\d+\)$")


class Profiler:
    """py-spy attached to the services (instances or kinds) named in ``targets``."""

    def __init__(self, targets: Iterable[str], out_dir: Path) -> None:
        self.targets = set(targets)
        self.out_dir = out_dir
        self._running: list[subprocess.Popen[bytes]] = []
        self._tool = shutil.which("py-spy")
        if self.targets and self._tool is None:
            raise RuntimeError("py-spy is missing: uv sync --group bench")

    def attach(self, service: ServiceProcess) -> None:
        """Start sampling ``service`` if it is a target (until it exits)."""
        if not ({service.service, service.name} & self.targets) or service.pid is None:
            return
        assert self._tool is not None
        self.out_dir.mkdir(parents=True, exist_ok=True)
        out = self.out_dir / f"{service.name}-{service.pid}.txt"
        argv = [self._tool, "record", "--pid", str(service.pid), "--output", str(out)]
        argv += ["--format", "raw", "--rate", str(RATE_HZ), "--gil", "--nonblocking"]
        self._running.append(
            subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )

    def stop(self) -> None:
        """Stop every sampler still running (each writes its file as it ends)."""
        for sampler in self._running:
            if sampler.poll() is None:
                sampler.send_signal(signal.SIGINT)
        for sampler in self._running:
            try:
                sampler.wait(30)
            except subprocess.TimeoutExpired:
                sampler.kill()


def frame_name(frame: str) -> str:
    """``function (package/module.py)`` of a py-spy frame, without line or prefix."""
    return _LOCATION.sub(lambda found: f" ({found.group(1)})", frame)


def summarize(lines: Iterable[str], top: int = 40) -> list[tuple[str, float]]:
    """The functions on the most samples (inclusive), with their share of all samples.

    ``lines`` are py-spy's raw (collapsed) output: ``frame;frame;... count``.
    """
    inclusive: Counter[str] = Counter()
    total = 0
    for line in lines:
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        for name in {frame_name(frame) for frame in stack.split(";")}:
            inclusive[name] += samples
    if not total:
        return []
    return [(name, samples / total) for name, samples in inclusive.most_common(top)]


def main(argv: list[str] | None = None) -> int:
    """Print the summary of a profile file."""
    parser = argparse.ArgumentParser(description="Summarise a py-spy raw profile.")
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)
    with args.file.open(encoding="utf-8") as lines:
        for name, share in summarize(lines, args.top):
            print(f"{share:6.1%}  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
