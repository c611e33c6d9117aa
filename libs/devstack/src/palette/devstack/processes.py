"""Child processes in their own process groups, with their output in a log file.

Every child runs in a new session, so stopping it signals its whole process
group (a server and anything it forked). Children still running when the
interpreter exits are stopped by an ``atexit`` hook, so a failing test does
not leave servers behind.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

_LIVE: weakref.WeakSet[ChildProcess] = weakref.WeakSet()


class ProcessFailedError(RuntimeError):
    """A child process exited or did not become ready; carries its log's tail."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    """Whether ``port`` can be bound on ``host`` now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class ChildProcess:
    """One command run as a child process; stdout and stderr appended to a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.log_offset = 0
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """Process id (also the process group id) of the running child."""
        return self._popen.pid if self._popen is not None else None

    @property
    def returncode(self) -> int | None:
        """Exit status once the child has exited (negative: killed by that signal)."""
        return self._popen.poll() if self._popen is not None else None

    def start(self) -> None:
        """Start the child (a stopped child can be started again; its log continues)."""
        if self.alive():
            raise ProcessFailedError(f"{self.name} is already running")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            stamp = datetime.now(UTC).isoformat()
            log.write(f"==== {stamp} start {self.name}: {' '.join(self.argv)}\n".encode())
            log.flush()
            self.log_offset = log.tell()
            self._popen = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
            )
        _LIVE.add(self)

    def alive(self) -> bool:
        """Whether the child is running."""
        return self._popen is not None and self._popen.poll() is None

    def send_signal(self, sig: int) -> None:
        """Send ``sig`` to the child's process group (nothing if it is gone)."""
        if self._popen is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._popen.pid, sig)

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the child to exit; its status, or None if it is still running."""
        if self._popen is None:
            return None
        with contextlib.suppress(subprocess.TimeoutExpired):
            return self._popen.wait(timeout)
        return None

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int | None:
        """Signal the group with ``sig``, then SIGKILL what is left after ``timeout`` s."""
        if self._popen is None:
            return None
        if self.alive():
            self.send_signal(sig)
            if self.wait(timeout) is None:
                self.send_signal(signal.SIGKILL)
                self.wait(10.0)
        # Whatever the leader left behind in its group goes too.
        self.send_signal(signal.SIGKILL)
        _LIVE.discard(self)
        return self.returncode

    def log_text(self, since_start: bool = True) -> str:
        """The log (from the latest start only, by default)."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self.log_offset if since_start else 0)
                return log.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the log since the latest start."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    def failure(self, problem: str) -> ProcessFailedError:
        """An error naming this child, its exit status and its log's tail."""
        return ProcessFailedError(
            f"{self.name} {problem} (exit status {self.returncode}); "
            f"log {self.log_path}:\n{self.log_tail()}"
        )

    def wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``check`` until it is true; fail if the child exits or time runs out."""
        deadline = time.monotonic() + timeout
        interval = 0.02
        while True:
            if not self.alive():
                raise self.failure(f"exited before {what}")
            if _quietly(check):
                return
            if time.monotonic() > deadline:
                raise self.failure(f"not {what} after {timeout:.0f} s")
            time.sleep(interval)
            interval = min(interval * 1.5, 0.25)


def _quietly(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except Exception:
        return False


def _stop_all() -> None:
    for child in list(_LIVE):
        child.stop(timeout=5.0)


atexit.register(_stop_all)
