"""The one-machine mode keeps its data: ``down``/``up`` and ``kill -9`` of every process."""

from __future__ import annotations

import hashlib
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.backends import Backend
from tests.e2e.conftest import Palette, release_queues, stack_vhost, start
from tests.examples import EXAMPLES

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def own_stack(test_backend: Backend, tmp_path: Path) -> Iterator[Palette]:
    palette = Palette(tmp_path / "state", stack_vhost(test_backend, "-persist"))
    try:
        yield palette
    finally:
        palette("down", timeout=200, check=False)
        release_queues(palette.rabbitmq_url)


def what_the_user_has(palette: Palette, job_id: str) -> dict:
    job = json.loads(palette("jobs", "show", job_id, "--json").stdout)
    return {
        "templates": json.loads(palette("templates", "list", "--json").stdout),
        "job": {k: job[k] for k in ("status", "records_done", "cost_usd", "budget_usd", "export")},
        "dashboard_models": palette.api().dashboard(job_id)["cost_by_model"],
    }


def all_pids(palette: Palette) -> list[int]:
    record = palette.record()
    return [record.supervisor.pid, *(p.pid for p in record.processes)]


class TestOneMachineModeKeepsItsData:
    def test_dataset_and_records_survive_down_up_and_kill_9_of_every_process(
        self, own_stack: Palette, tmp_path: Path
    ) -> None:
        palette = own_stack
        start(palette, "--generators", "1", "--emulator-latency-ms", "10")
        first = tmp_path / "first"
        palette(
            "run",
            str(EXAMPLES / "template.json"),
            str(EXAMPLES / "seeds.jsonl"),
            "-n",
            "80",
            "--budget",
            "1",
            "--yes",
            "-o",
            str(first),
        )
        job_id = json.loads(palette("jobs", "list", "--json").stdout)[0]["id"]
        before = what_the_user_has(palette, job_id)
        original = digest(first / "dataset.parquet")

        # down, then up: every process exits, and everything is there again.
        pids = all_pids(palette)
        palette("down", timeout=200)
        assert not [
            p
            for p in pids
            if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
        ]
        assert palette.state.read_run() is None
        start(palette, "--generators", "1")
        assert what_the_user_has(palette, job_id) == before
        again = tmp_path / "again"
        palette("jobs", "download", job_id, "-o", str(again))
        assert digest(again / "dataset.parquet") == original

        # kill -9 of every process, supervisor included, then up.
        pids = all_pids(palette)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        _, alive = psutil.wait_procs([psutil.Process(p) for p in pids], timeout=60)
        assert not alive
        assert palette.state.read_run() is not None  # nobody could clean up
        up = start(palette, "--generators", "1")
        assert up["already_running"] is False
        assert what_the_user_has(palette, job_id) == before
        crashed = tmp_path / "after-kill"
        palette("jobs", "download", job_id, "-o", str(crashed))
        assert digest(crashed / "dataset.parquet") == original
        # and it still works: a new job after the crash
        palette(
            "run",
            str(EXAMPLES / "template.json"),
            str(EXAMPLES / "seeds.jsonl"),
            "-n",
            "10",
            "--budget",
            "1",
            "--yes",
            "-o",
            str(tmp_path / "new"),
        )
