"""The live view of ``palette run`` on a real terminal (a pty), read back as a screen."""

from __future__ import annotations

import re
from pathlib import Path

import pexpect
import pyte
import pytest

from palette.devstack.emulator_client import EmulatorControl
from tests.e2e.conftest import PALETTE, Palette
from tests.examples import EXAMPLES

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

ROWS, COLUMNS = 40, 120
PANEL = re.compile(r"Job [0-9a-f]{32}  ([A-Z_]+)\s*\n\s*Records .*\n\s*Cost ", re.MULTILINE)


class TestLiveViewOnATerminal:
    def test_screen_shows_records_cost_retries_and_status_and_ends_completed(
        self, cli: Palette, tmp_path: Path
    ) -> None:
        # Three failed attempts, none a call's last: 2 throttled, 3 made again.
        emulator = EmulatorControl(cli.record().emulator_control_url)
        emulator.configure(
            script=["ThrottlingException", "ServiceUnavailableException", "ThrottlingException"]
        )
        screen = pyte.Screen(COLUMNS, ROWS)
        stream = pyte.ByteStream(screen)
        env = cli.env(TERM="xterm-256color", COLUMNS=str(COLUMNS), LINES=str(ROWS))
        env.pop("NO_COLOR", None)
        child = pexpect.spawn(
            PALETTE,
            [
                "run",
                str(EXAMPLES / "template.json"),
                str(EXAMPLES / "seeds.jsonl"),
                "-n",
                "150",
                "--budget",
                "1",
                "--yes",
                "-o",
                str(tmp_path / "out"),
            ],
            env=env,
            dimensions=(ROWS, COLUMNS),
            timeout=300,
        )
        frames: list[str] = []
        try:
            while True:
                try:
                    chunk = child.read_nonblocking(65536, timeout=300)
                except pexpect.EOF:
                    break
                stream.feed(chunk)
                frames.append("\n".join(screen.display))
        finally:
            child.close()
            left = emulator.config()["script"]
            emulator.reset()
        assert left == []
        assert child.exitstatus == 0, frames[-1]
        # A frame of the live view: the job's line with its status above the bars.
        panels = [(m.group(1), f) for f in frames if (m := PANEL.search(f))]
        assert panels, frames[-1]
        statuses = [status for status, _ in panels]
        assert {"QUEUED", "RUNNING"} & set(statuses), statuses
        last_status, last_panel = panels[-1]
        assert last_status == "COMPLETED"
        assert "150 / 150" in last_panel
        assert "of $1" in last_panel
        assert re.search(r"Retries\s+2 throttled, 3 retried", last_panel), last_panel
        assert (tmp_path / "out" / "dataset.parquet").exists()
