"""``make demo`` ends with the dataset and its card on local disk, and stops what it started."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.backends import Backend
from tests.e2e.conftest import Palette, release_queues, stack_vhost

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]


class TestMakeDemo:
    def test_leaves_the_dataset_on_disk_prints_samples_and_stops(
        self, test_backend: Backend, tmp_path: Path
    ) -> None:
        palette = Palette(tmp_path / "state", stack_vhost(test_backend, "-demo"))
        env = palette.env()
        out = tmp_path / "out"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "palette.cli.demo",
                "--records",
                "20",
                "--latency-ms",
                "5",
                "--state-dir",
                str(tmp_path / "state"),
                "--out",
                str(out),
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=840,
            check=False,
        )
        release_queues(palette.rabbitmq_url)  # the demo has stopped its services
        assert done.returncode == 0, done.stdout + done.stderr
        assert pq.read_table(out / "dataset.parquet").num_rows == 20
        assert (out / "README.md").exists()
        assert f"Dataset: {out / 'dataset.parquet'} (20 records)" in done.stdout
        assert "Sample 3:" in done.stdout
        assert "import pyarrow.parquet as pq" in done.stdout
        assert not (tmp_path / "state" / "run.json").exists()
