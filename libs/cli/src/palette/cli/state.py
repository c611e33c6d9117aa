"""Where ``palette up`` keeps its data, logs and the record of what it runs.

The state dir (``--state-dir``, else ``PALETTE_STATE_DIR``, else
``$XDG_DATA_HOME/palette`` or ``~/.local/share/palette``) holds:

- ``secantus/`` and ``s3/``: the database and the objects (kept across ``down``/``up``);
- ``logs/<process>.log``: every process's output, the supervisor's in ``supervisor.log``;
- ``jwt-secret``: the gateway's signing secret, made once (mode 0600), so tokens
  minted for this system stay valid across restarts and nobody else's work;
- ``run.json``: written by the supervisor once everything answers, removed when
  it stops: its pid, each process's pid, the addresses;
- ``gateway.port``: the gateway's port, reused by the next ``up`` when free.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

STATE_DIR_ENV = "PALETTE_STATE_DIR"


def default_state_dir() -> Path:
    """The state dir of this user (see the module docstring)."""
    if os.environ.get(STATE_DIR_ENV):
        return Path(os.environ[STATE_DIR_ENV]).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data_home).expanduser() / "palette"


@dataclass
class ProcessRecord:
    """One process ``palette up`` runs; ``create_time`` tells it from a later one with its pid."""

    name: str
    pid: int
    create_time: float
    log: str
    url: str | None = None

    @classmethod
    def of(cls, name: str, pid: int, log: Path, url: str | None = None) -> ProcessRecord:
        """The record of the running process ``pid``."""
        return cls(name, pid, psutil.Process(pid).create_time(), str(log), url)

    def process(self) -> psutil.Process | None:
        """The process, if it is still this one and has not exited."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 0.01:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            return None
        return proc

    def alive(self) -> bool:
        """Whether the process still runs."""
        return self.process() is not None


@dataclass
class RunRecord:
    """``run.json``: what runs and where it answers."""

    supervisor: ProcessRecord
    gateway_url: str
    rabbitmq_url: str
    emulator_control_url: str
    started_at: str
    processes: list[ProcessRecord] = field(default_factory=list)

    @property
    def docs_url(self) -> str:
        """The API docs (OpenAPI UI)."""
        return f"{self.gateway_url}/schema"

    def to_json(self) -> str:
        """The record as JSON."""
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> RunRecord:
        """Read a record written by ``to_json``."""
        data: dict[str, Any] = json.loads(text)
        data["supervisor"] = ProcessRecord(**data["supervisor"])
        data["processes"] = [ProcessRecord(**p) for p in data["processes"]]
        return cls(**data)


class StateDir:
    """The files of one one-machine system."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path).expanduser().resolve() if path else default_state_dir().resolve()
        self._lock_fd: int | None = None

    @property
    def log_dir(self) -> Path:
        """Every process's log."""
        return self.path / "logs"

    @property
    def run_file(self) -> Path:
        """``run.json``."""
        return self.path / "run.json"

    @property
    def failure_file(self) -> Path:
        """Why the supervisor could not start (written only then)."""
        return self.log_dir / "start-failure.txt"

    @property
    def supervisor_log(self) -> Path:
        """The supervisor's own log."""
        return self.log_dir / "supervisor.log"

    def lock(self) -> bool:
        """Take the supervisor's lock for the life of this process; False if another holds it."""
        self.path.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path / "supervisor.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd  # kept open: the lock goes when the process exits
        return True

    def locked(self) -> bool:
        """Whether a supervisor holds the lock now (it is starting or running)."""
        if not (self.path / "supervisor.lock").exists():
            return False
        fd = os.open(self.path / "supervisor.lock", os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def read_run(self) -> RunRecord | None:
        """The run record, if the supervisor wrote one."""
        try:
            return RunRecord.from_json(self.run_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None

    def write_run(self, record: RunRecord) -> None:
        """Write ``run.json`` atomically (mode 0600: it holds the broker URL)."""
        self._write_private(self.run_file, record.to_json())

    def clear_run(self) -> None:
        """Remove ``run.json``."""
        self.run_file.unlink(missing_ok=True)

    def jwt_secret(self) -> str:
        """The gateway's signing secret, made on first use."""
        path = self.path / "jwt-secret"
        if not path.exists():
            self._write_private(path, secrets.token_urlsafe(48))
        return path.read_text(encoding="utf-8").strip()

    def existing_jwt_secret(self) -> str | None:
        """The signing secret, if this state dir has one."""
        path = self.path / "jwt-secret"
        return path.read_text(encoding="utf-8").strip() if path.exists() else None

    def last_port(self) -> int | None:
        """The gateway port of the last ``up``."""
        try:
            return int((self.path / "gateway.port").read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return None

    def remember_port(self, port: int) -> None:
        """Keep the gateway port for the next ``up``."""
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "gateway.port").write_text(str(port), encoding="utf-8")

    def _write_private(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = path.with_name(path.name + ".tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        temp.replace(path)
