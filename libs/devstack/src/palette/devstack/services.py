"""The four services as separate OS processes, for end-to-end and fault tests.

Each runs ``python -m palette.<service>`` with the stack's environment plus
per-service overrides, its output (stderr and stdout) in ``<log_dir>/<name>.log``.

Ready means: the gateway answers ``GET /health`` with 200 on
``127.0.0.1:$PALETTE_GATEWAY_PORT``; any other service has logged a line
containing ``service_started`` (the event each service logs once its broker
subscriptions are up) and is still running a moment later.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from palette.devstack import readiness
from palette.devstack.processes import ChildProcess, free_port

SERVICES = ("gateway", "scheduler", "generator", "accounting")
READY_MARKER = "service_started"
SETTLE_SECONDS = 0.2


class ServiceProcess:
    """One service process that can be killed, restarted and waited on.

    Args:
        service: ``gateway``, ``scheduler``, ``generator`` or ``accounting``.
        env: environment on top of this process's own (e.g. ``DevStack.env()``).
        log_dir: where ``<name>.log`` goes.
        name: the instance's name (default: ``service``), e.g. ``generator-1``.
        ready_marker: what a non-gateway service logs once it is ready.
        command: what to run instead of ``python -m palette.<service>`` (test doubles).
    """

    def __init__(
        self,
        service: str,
        env: Mapping[str, str],
        log_dir: Path,
        *,
        name: str | None = None,
        ready_marker: str = READY_MARKER,
        command: Sequence[str] | None = None,
    ) -> None:
        if service not in SERVICES:
            raise ValueError(f"unknown service {service!r}; expected one of {SERVICES}")
        self.service = service
        self.name = name or service
        self.ready_marker = ready_marker
        self.port: int | None = None
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
        if service == "gateway":
            self.port = int(env.get("PALETTE_GATEWAY_PORT") or free_port())
            full_env |= {
                "PALETTE_GATEWAY_PORT": str(self.port),
                "PALETTE_GATEWAY_HOST": "127.0.0.1",
            }
        self.env = full_env
        self.process = ChildProcess(
            self.name,
            list(command or [sys.executable, "-m", f"palette.{service}"]),
            log_dir / f"{self.name}.log",
            env=full_env,
        )

    @property
    def url(self) -> str:
        """Base URL of the gateway (only for the gateway)."""
        if self.port is None:
            raise AttributeError(f"{self.name} serves no HTTP")
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        """Process id of the running process."""
        return self.process.pid

    @property
    def log_path(self) -> Path:
        """The service's log file (every start appends to it)."""
        return self.process.log_path

    def start(self) -> None:
        """Start the process (it logs to the same file across restarts)."""
        self.process.start()

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.process.alive()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the service is ready (see the module docstring).

        Raises:
            ProcessFailedError: it exited or was not ready in time (log tail included).
        """
        if self.port is not None:
            health = f"{self.url}/health"
            self.process.wait_until(lambda: readiness.http_ok(health), timeout, "healthy")
            return
        self.process.wait_until(
            lambda: self.ready_marker in self.process.log_text(), timeout, "started"
        )
        time.sleep(SETTLE_SECONDS)
        if not self.alive():
            raise self.process.failure("exited right after starting")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the service's process group (SIGKILL: crash it)."""
        self.process.send_signal(sig)
        if sig == signal.SIGKILL:
            self.process.wait(10.0)

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the process to exit; its status, or None if still running."""
        return self.process.wait(timeout)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; returns the exit status."""
        return self.process.stop(timeout)

    def restart(self, sig: int = signal.SIGTERM, wait: bool = True, timeout: float = 60.0) -> None:
        """Stop the process with ``sig`` (if running), start it again, wait until ready."""
        if self.alive():
            self.process.stop(10.0, sig=sig)
        self.start()
        if wait:
            self.wait_ready(timeout)

    def log_text(self, since_start: bool = False) -> str:
        """The service's log (every start, by default)."""
        return self.process.log_text(since_start=since_start)


@dataclass
class ServiceGroup:
    """The running services: one gateway, scheduler and accounting, N generators."""

    gateway: ServiceProcess
    scheduler: ServiceProcess
    accounting: ServiceProcess
    generators: list[ServiceProcess] = field(default_factory=list)
    log_dir: Path = field(default_factory=Path)

    def __iter__(self) -> Iterator[ServiceProcess]:
        return iter([self.gateway, self.scheduler, self.accounting, *self.generators])

    @property
    def gateway_url(self) -> str:
        """Base URL of the gateway's REST API."""
        return self.gateway.url

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until every service is ready."""
        deadline = time.monotonic() + timeout
        for service in self:
            service.wait_ready(max(1.0, deadline - time.monotonic()))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every service (SIGTERM to all first, so they shut down in parallel)."""
        for service in self:
            if service.alive():
                service.kill(signal.SIGTERM)
        for service in self:
            service.stop(timeout)

    def __enter__(self) -> ServiceGroup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_services(
    env: Mapping[str, str],
    generators: int = 1,
    *,
    log_dir: str | Path | None = None,
    overrides: Mapping[str, Mapping[str, str]] | None = None,
    wait: bool = True,
    timeout: float = 90.0,
) -> ServiceGroup:
    """Start the four services (``generators`` generator processes) as OS processes.

    Args:
        env: environment for every service (e.g. ``DevStack.env()``).
        generators: how many generator processes.
        log_dir: where the logs go (default: a new temporary directory, kept).
        overrides: extra environment per service name (``"generator"``) or
            instance name (``"generator-1"``; the instance wins).
        wait: wait until every service is ready.
        timeout: seconds to wait for all of them.

    Returns:
        The group; stop it with ``stop()`` or use it as a context manager.
    """
    directory = Path(log_dir or tempfile.mkdtemp(prefix="palette-services-"))
    directory.mkdir(parents=True, exist_ok=True)
    overrides = overrides or {}

    def make(service: str, name: str | None = None) -> ServiceProcess:
        extra = {**overrides.get(service, {}), **overrides.get(name or service, {})}
        return ServiceProcess(service, {**env, **extra}, directory, name=name)

    group = ServiceGroup(
        gateway=make("gateway"),
        scheduler=make("scheduler"),
        accounting=make("accounting"),
        generators=[make("generator", f"generator-{i}") for i in range(generators)],
        log_dir=directory,
    )
    try:
        for service in group:
            service.start()
        if wait:
            group.wait_ready(timeout)
    except BaseException:
        group.stop()
        raise
    return group
