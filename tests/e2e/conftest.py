"""The ``palette`` command against the real one-machine system it starts.

Each stack here is started by ``palette up`` itself, with a state dir under
the session's temporary folder, a free gateway port and a RabbitMQ virtual
host of its own (``$PALETTE_TEST_VHOST-cli``, ``...-persist``), so it never
sees the integration tests' messages nor the machine's default vhost. The
command runs as a subprocess, as a user would run it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from palette.cli.api import Api
from palette.cli.config import Connection, mint_local
from palette.cli.state import RunRecord, StateDir
from tests.backends import Backend
from tests.conftest import kept_vhost_url, release_queues, vhost_name

PALETTE = str(Path(sys.executable).parent / "palette")
UP_SECONDS = 660


@dataclass
class Palette:
    """Runs the ``palette`` command for one state dir, as one user."""

    state_dir: Path
    rabbitmq_url: str
    user: str = field(default_factory=lambda: f"cli-{uuid.uuid4().hex[:10]}")
    home: Path | None = None

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            **os.environ,
            "PALETTE_STATE_DIR": str(self.state_dir),
            "RABBITMQ_URL": self.rabbitmq_url,
            "PALETTE_USER": self.user,
            "PALETTE_CONFIG": str(self.state_dir.parent / f"{self.user}.toml"),
            "COLUMNS": "120",
        }
        for name in ("PALETTE_URL", "PALETTE_TOKEN"):
            env.pop(name, None)
        return env | extra

    def __call__(
        self, *args: str, timeout: float = 300, check: bool = True, **extra: str
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [PALETTE, *args],
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"palette {' '.join(args)} exited {done.returncode}\n"
                f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
            )
        return done

    def popen(self, *args: str, **extra: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [PALETTE, *args],
            env=self.env(**extra),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    @property
    def state(self) -> StateDir:
        return StateDir(self.state_dir)

    def record(self) -> RunRecord:
        record = self.state.read_run()
        assert record is not None, f"no run.json in {self.state_dir}"
        return record

    def api(self) -> Api:
        """A REST client as this user (for checks the test makes itself)."""
        token = mint_local(self.state, sub=self.user)
        return Api(Connection(self.record().gateway_url, token))

    def as_new_user(self) -> Palette:
        return Palette(self.state_dir, self.rabbitmq_url, home=self.home)


def start(palette: Palette, *extra: str) -> dict[str, Any]:
    """``palette up --json`` with a free port and test-sized settings; its answer."""
    import json

    done = palette("up", "--port", "0", "--json", *extra, timeout=UP_SECONDS)
    return dict(json.loads(done.stdout))


def stack_vhost(test_backend: Backend, suffix: str) -> str:
    url = kept_vhost_url(test_backend, vhost_name(suffix), reset=True)
    if url is None:
        pytest.fail(f"cannot create the RabbitMQ vhost {vhost_name(suffix)} (rabbitmqctl)")
    return url


@pytest.fixture(scope="session")
def cli_stack(test_backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Palette]:
    """One system started by ``palette up`` for the CLI tests; ``palette down`` at the end."""
    palette = Palette(tmp_path_factory.mktemp("cli") / "state", stack_vhost(test_backend, "-cli"))
    start(palette, "--emulator-latency-ms", "20")
    try:
        yield palette
    finally:
        palette("down", timeout=200, check=False)
        release_queues(palette.rabbitmq_url)


@pytest.fixture
def cli(cli_stack: Palette) -> Palette:
    """The CLI as a fresh user of the session's system."""
    return cli_stack.as_new_user()
