"""A RabbitMQ node of the fault suite's own, which its tests may stop and restart.

The machine's broker (127.0.0.1:5672) serves other test runs and must stay up,
so the fault suite starts a second node of the locally installed RabbitMQ on
free ports, with its own data directory and a short consumer acknowledgement
timeout (case 11). ``rabbitmqctl stop_app``/``start_app`` and a full ``stop``
plus restart act on this node only.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

from palette.devstack.processes import free_port

NODE_START_TIMEOUT = 90


class BrokerUnavailableError(RuntimeError):
    """No local RabbitMQ installation can start a node here (the message says why)."""


class PrivateRabbit:
    """One RabbitMQ node: ``start``, ``stop_app``/``start_app``, ``stop``, ``url``."""

    def __init__(self, base: Path, consumer_timeout_ms: int = 10_000) -> None:
        server = shutil.which("rabbitmq-server")
        self.ctl = shutil.which("rabbitmqctl")
        if server is None or self.ctl is None:
            raise BrokerUnavailableError(
                "the fault suite starts a RabbitMQ node of its own and needs rabbitmq-server "
                "and rabbitmqctl on PATH (Debian: apt-get install rabbitmq-server)"
            )
        self.server = server
        self.base = base
        self.port = free_port()
        self.dist_port = free_port()
        self.node = f"palette-faults-{self.port}@localhost"
        self.consumer_timeout_ms = consumer_timeout_ms

    @property
    def url(self) -> str:
        """AMQP URL of the node's default vhost."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONFIG_FILE": str(self.base / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.base / "enabled_plugins"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.base / "advanced.config"),
            "RABBITMQ_MNESIA_BASE": str(self.base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.base / "log"),
            "RABBITMQ_PID_FILE": str(self.base / "node.pid"),
        }

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        assert self.ctl is not None
        return subprocess.run(
            [self.ctl, "-n", self.node, *args],
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
            env=self._env(),
        )

    def start(self) -> None:
        """Start the node (detached) and wait until its applications run."""
        self.base.mkdir(parents=True, exist_ok=True)
        (self.base / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
            f"consumer_timeout = {self.consumer_timeout_ms}\n"
            "loopback_users = none\n"
        )
        (self.base / "enabled_plugins").write_text("[].\n")
        # Channels check consumer timeouts on their tick (every 60 s by default).
        (self.base / "advanced.config").write_text("[{rabbit, [{channel_tick_interval, 1000}]}].\n")
        if os.geteuid() == 0:
            # Debian's wrapper runs the node as the rabbitmq user: it must own the files.
            try:
                owner = pwd.getpwnam("rabbitmq")
            except KeyError:
                owner = None
            if owner is not None:
                for path in [self.base, *self.base.rglob("*")]:
                    os.chown(path, owner.pw_uid, owner.pw_gid)
        subprocess.run(
            [self.server, "-detached"], env=self._env(), check=False, timeout=60, cwd=self.base
        )
        self.wait_running()

    def wait_running(self) -> None:
        """Wait until the node's applications (and the AMQP listener) are up."""
        done = self._run("wait", str(self.base / "node.pid"), "--timeout", str(NODE_START_TIMEOUT))
        if done.returncode != 0:
            raise BrokerUnavailableError(
                f"RabbitMQ node {self.node} did not start: {done.stdout}{done.stderr}"
                f" (logs in {self.base / 'log'})"
            )
        self._run("await_startup", "--timeout", str(NODE_START_TIMEOUT))

    def log_text(self) -> str:
        """Everything the node has logged."""
        return "".join(
            path.read_text(errors="replace") for path in sorted((self.base / "log").glob("*.log"))
        )

    def stop_app(self) -> None:
        """``rabbitmqctl stop_app``: the node stays, the broker closes every connection."""
        done = self._run("stop_app")
        assert done.returncode == 0, done.stderr

    def start_app(self) -> None:
        """``rabbitmqctl start_app``."""
        done = self._run("start_app")
        assert done.returncode == 0, done.stderr
        self._run("await_startup", "--timeout", str(NODE_START_TIMEOUT))

    def stop(self) -> None:
        """``rabbitmqctl stop``: the whole node exits (no-op if it is not running)."""
        self._run("stop", timeout=120)

    def restart(self, downtime: float = 0.0) -> None:
        """A full stop, ``downtime`` seconds, then a new node process on the same data."""
        self.stop()
        time.sleep(downtime)
        subprocess.run(
            [self.server, "-detached"], env=self._env(), check=False, timeout=60, cwd=self.base
        )
        self.wait_running()
