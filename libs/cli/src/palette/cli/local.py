"""``palette up``, ``down``, ``status`` and ``logs``: the one-machine system in the background.

``up`` starts the supervisor (``palette.cli.supervisor``) as a detached process
and waits until it has written ``run.json`` (everything answers) or has exited
(its log says why). ``down`` sends it SIGTERM and waits until it and every
process it ran have exited. Whatever a killed supervisor left behind is
stopped by the next ``up`` or ``down``, by the pids in ``run.json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from palette.cli.state import ProcessRecord, RunRecord, StateDir
from palette.devstack.broker import ensure_rabbitmq
from palette.devstack.processes import free_port, port_free
from palette.devstack.queues import queue_depths
from palette.devstack.stack import DEFAULT_RABBITMQ_URL

DEFAULT_PORT = 8000
UP_TIMEOUT = 600.0
DOWN_TIMEOUT = 120.0


class LocalError(RuntimeError):
    """The one-machine system could not be started or stopped (the message says why)."""


def choose_port(state: StateDir, requested: int | None) -> int:
    """The gateway's port: the one asked for, else the last one, else 8000, else any free one."""
    if requested:
        if not port_free(requested):
            raise LocalError(f"port {requested} is in use; pass another --port (0: any free port)")
        return requested
    if requested == 0:
        return free_port()
    for candidate in (state.last_port(), DEFAULT_PORT):
        if candidate and port_free(candidate):
            return candidate
    return free_port()


def stop_processes(records: list[ProcessRecord], timeout: float) -> None:
    """SIGTERM each process's group, then SIGKILL the groups still running after ``timeout`` s."""
    running = [(r, p) for r in records if (p := r.process()) is not None]
    for record, _ in running:
        _signal_group(record.pid, signal.SIGTERM)
    _, alive = psutil.wait_procs([p for _, p in running], timeout=timeout)
    for proc in alive:
        _signal_group(proc.pid, signal.SIGKILL)
    psutil.wait_procs(alive, timeout=10)


def _signal_group(pid: int, sig: int) -> None:
    """Signal the process group ``pid`` leads (each process runs in a session of its own)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def clean_leftovers(state: StateDir) -> bool:
    """Stop what a dead supervisor left running; whether there was a stale ``run.json``."""
    record = state.read_run()
    if record is None or record.supervisor.alive():
        return False
    stop_processes(record.processes, timeout=10.0)
    state.clear_run()
    return True


@dataclass
class UpResult:
    """What ``up`` found or started."""

    record: RunRecord
    already_running: bool


def up(
    state: StateDir,
    *,
    port: int | None = None,
    generators: int = 2,
    rabbitmq_url: str | None = None,
    emulator_latency_ms: float = 150.0,
    timeout: float = UP_TIMEOUT,
) -> UpResult:
    """Start the one-machine system in the background (nothing if it already runs)."""
    record = state.read_run()
    if record is not None and record.supervisor.alive():
        return UpResult(record, already_running=True)
    if record is None and state.locked():  # another `up` is starting it right now
        return UpResult(_wait_for_other(state, timeout), already_running=True)
    if generators < 1:
        raise LocalError("--generators must be at least 1")
    clean_leftovers(state)
    chosen = choose_port(state, port)
    broker = rabbitmq_url or os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
    ensure_rabbitmq(broker)
    state.log_dir.mkdir(parents=True, exist_ok=True)
    state.remember_port(chosen)
    argv = [sys.executable, "-m", "palette.cli.supervisor", "--state-dir", str(state.path)]
    argv += ["--port", str(chosen), "--generators", str(generators)]
    argv += ["--rabbitmq-url", broker, "--emulator-latency-ms", f"{emulator_latency_ms:g}"]
    with state.supervisor_log.open("ab") as output:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=state.path,
        )
    return UpResult(_wait_started(state, proc, timeout), already_running=False)


def _wait_started(state: StateDir, proc: subprocess.Popen[bytes], timeout: float) -> RunRecord:
    deadline = time.monotonic() + timeout
    while True:
        record = state.read_run()
        if record is not None and record.supervisor.pid == proc.pid:
            return record
        if proc.poll() is not None:
            reason = tail(state.failure_file, 40) or tail(state.supervisor_log, 25)
            raise LocalError(
                f"the system did not start (exit status {proc.returncode}; logs in "
                f"{state.log_dir}):\n{reason}"
            )
        if time.monotonic() > deadline:
            proc.send_signal(signal.SIGTERM)
            raise LocalError(f"the system was not up after {timeout:.0f} s; see {state.log_dir}")
        time.sleep(0.2)


def _wait_for_other(state: StateDir, timeout: float) -> RunRecord:
    deadline = time.monotonic() + timeout
    while (record := state.read_run()) is None:
        if not state.locked():
            raise LocalError(f"the other start failed; see {state.log_dir}")
        if time.monotonic() > deadline:
            raise LocalError(f"the system was not up after {timeout:.0f} s; see {state.log_dir}")
        time.sleep(0.2)
    return record


def down(state: StateDir, timeout: float = DOWN_TIMEOUT) -> bool:
    """Stop the system and wait until every process has exited; whether anything ran."""
    record = state.read_run()
    if record is None:
        return False
    supervisor = record.supervisor.process()
    if supervisor is not None:
        supervisor.send_signal(signal.SIGTERM)
        _, alive = psutil.wait_procs([supervisor], timeout=timeout)
        for proc in alive:
            proc.kill()
    # The supervisor stops its children; whatever it could not (it was killed) goes now.
    stop_processes(record.processes, timeout=10.0)
    state.clear_run()
    return True


@dataclass
class ProcessStatus:
    """One process as ``status`` shows it."""

    name: str
    pid: int
    running: bool
    health: str
    url: str | None


def process_status(record: RunRecord) -> list[ProcessStatus]:
    """Each process: running or not, and the gateway's ``/health``."""
    rows = []
    for proc in [record.supervisor, *record.processes]:
        running = proc.alive()
        health = "ok" if running else "down"
        url = proc.url
        if proc.name == "gateway":
            url = record.gateway_url
            health = _http_health(f"{record.gateway_url}/health") if running else "down"
        rows.append(ProcessStatus(proc.name, proc.pid, running, health, url))
    return rows


def _http_health(url: str) -> str:
    try:
        response = httpx.get(url, timeout=5.0)
    except httpx.HTTPError as exc:
        return f"unreachable ({type(exc).__name__})"
    return "ok" if response.status_code == 200 else f"HTTP {response.status_code}"


def broker_depths(record: RunRecord) -> dict[str, int | None]:
    """Messages ready per queue on the system's broker."""
    return asyncio.run(queue_depths(record.rabbitmq_url))


def log_files(state: StateDir, service: str | None) -> list[Path]:
    """The log files of ``service`` (``generator`` means every generator), or all of them."""
    files = sorted(state.log_dir.glob("*.log"))
    if service is None:
        return files
    chosen = [f for f in files if f.stem == service or f.stem.startswith(f"{service}-")]
    if not chosen:
        names = ", ".join(f.stem for f in files) or "none yet"
        raise LocalError(f"no log of {service!r} in {state.log_dir} (there are: {names})")
    return chosen


def tail(path: Path, lines: int) -> str:
    """The last ``lines`` lines of a text file."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
