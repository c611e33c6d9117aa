"""Running the built image for ``make test-image``.

Each service's command runs in a container of its own, as the image's user, on
the host's network, against this machine's RabbitMQ (on a virtual host of its
own, deleted afterwards) and the dev stack (``palette-devstack up``, whose
``env`` file is the containers' ``--env-file``: the same environment a service
run on the host gets).
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import httpx
from tools.image.engine import Engine

SERVICES = ("gateway", "scheduler", "accounting", "generator")
T = TypeVar("T")


def wait_for(what: str, check: Callable[[], T | None], timeout: float) -> T:
    """Poll ``check`` until it returns something; raise naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.5)


def free_port() -> int:
    """A TCP port nothing listens on now, on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def rabbitmqctl(*args: str) -> str:
    """Run ``rabbitmqctl``; its output, or RuntimeError with what it said."""
    program = shutil.which("rabbitmqctl")
    if program is None:
        raise RuntimeError("rabbitmqctl not found: the image is run against this machine's broker")
    # A session of its own: on a timeout the whole command goes (rabbitmqctl runs su,
    # sh and an Erlang node, which would otherwise outlive it holding a CLI port).
    process = subprocess.Popen(
        [program, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {err.strip() or out}")
    return out


@dataclass(frozen=True, slots=True)
class Broker:
    """The broker of a run: the services' URL, its virtual host and its ``rabbitmqctl``."""

    url: str
    vhost: str
    ctl: Callable[..., str]


def amqp_answers(url: str, timeout: float = 20) -> bool:
    """Whether the broker at ``url`` answers the AMQP protocol header (not just TCP)."""
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 5) as s:
            s.settimeout(timeout)
            s.sendall(b"AMQP\x00\x00\x09\x01")
            return bool(s.recv(8))
    except OSError:
        return False


@contextmanager
def machine_broker(base_url: str, name: str) -> Iterator[Broker]:
    """A virtual host of this run on the machine's broker (deleted on exit)."""
    if not amqp_answers(base_url):
        raise RuntimeError(
            f"RabbitMQ at {urlsplit(base_url).netloc.rpartition('@')[2]} does not answer the "
            "AMQP handshake (see its log); ARGS=--own-broker runs a RabbitMQ node of this run's own"
        )
    rabbitmqctl("add_vhost", name)
    try:
        user = urlsplit(base_url).username or "guest"
        rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
        parts = urlsplit(base_url)
        yield Broker(urlunsplit(parts._replace(path="/" + quote(name, safe=""))), name, rabbitmqctl)
    finally:
        try:
            rabbitmqctl("delete_vhost", name)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"could not delete vhost {name} ({exc}): `rabbitmqctl delete_vhost {name}`")


@contextmanager
def own_broker(base: Path) -> Iterator[Broker]:
    """A RabbitMQ node of this run's own (the fault suite's), stopped on exit."""
    from tests.faults.broker import PrivateRabbit

    node = PrivateRabbit(base)
    node.start()

    def ctl(*args: str) -> str:
        done = node._run(*args)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    try:
        yield Broker(node.url, "/", ctl)
    finally:
        node.stop()
        _end_node(base / "node.pid", node.node)


def _end_node(pid_file: Path, name: str) -> None:
    """SIGTERM the node if it still runs (when ``rabbitmqctl stop`` could not reach it)."""
    try:
        pid = int(pid_file.read_text(encoding="ascii").strip())
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    if f"RABBITMQ_NODENAME={name}".encode() in environ:  # that pid is still our node
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def consumers(broker: Broker) -> dict[str, int]:
    """Consumers of each queue of the broker's virtual host."""
    out = broker.ctl("list_queues", "-p", broker.vhost, "--silent", "name", "consumers")
    found = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].isdigit():
            found[fields[0]] = int(fields[1])
    return found


@contextmanager
def devstack(state: Path, rabbitmq_url: str) -> Iterator[Path]:
    """``palette-devstack up`` in the background; yields its env file once it is written."""
    log = state / "devstack.log"
    state.mkdir(parents=True, exist_ok=True)
    env_file = state / "env"
    program = Path(sys.executable).parent / "palette-devstack"
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            [str(program), "up", "--state-dir", str(state), "--rabbitmq-url", rabbitmq_url],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def ready() -> Path | None:
            if process.poll() is not None:
                raise RuntimeError(f"palette-devstack up exited {process.returncode}: see {log}")
            return env_file if env_file.exists() else None

        yield wait_for("palette-devstack up writes its env file", ready, timeout=180)
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Containers:
    """The service containers of one run, removed on ``remove_all``."""

    def __init__(self, engine: Engine, image: str, env_file: Path, run_id: str) -> None:
        self.engine, self.image, self.env_file, self.run_id = engine, image, env_file, run_id
        self.names: dict[str, str] = {}
        self.metrics: dict[str, int] = {}

    def start(self, service: str, env: dict[str, str]) -> str:
        """Run ``palette-<service>`` detached on the host network; the container's name."""
        name = f"palette-image-{self.run_id}-{service}"
        pairs = [arg for key, value in env.items() for arg in ("--env", f"{key}={value}")]
        self.engine.run(
            "run", "--detach", "--name", name, "--network=host",
            "--env-file", str(self.env_file), *pairs, self.image, f"palette-{service}",
        )  # fmt: skip
        self.names[service] = name
        self.metrics[service] = int(env[f"PALETTE_{service.upper()}_METRICS_PORT"])
        return name

    def uid(self, service: str) -> str:
        """The real, effective, saved and file-system uids of the service's main process."""
        status = self.engine.run("exec", self.names[service], "cat", "/proc/1/status").stdout
        return next(
            line.split(None, 1)[1] for line in status.splitlines() if line.startswith("Uid:")
        )

    def running(self, service: str) -> bool:
        """Whether the service's container still runs."""
        state = self.engine.run(
            "inspect", "--format", "{{.State.Running}}", self.names[service], check=False
        )
        return state.stdout.strip() == "true"

    def logs(self, service: str, lines: int = 40) -> str:
        """The last lines the service wrote."""
        out = self.engine.run("logs", "--tail", str(lines), self.names[service], check=False)
        return "\n".join(part.strip() for part in (out.stdout, out.stderr) if part.strip())

    def remove_all(self) -> None:
        """Stop and remove every container of this run."""
        for name in self.names.values():
            self.engine.run("rm", "--force", name, check=False, timeout=120)


def service_env(service: str, gateway_port: int, jwt_secret: str) -> dict[str, str]:
    """What one container adds to the dev stack's environment: its ports (host network)."""
    env = {f"PALETTE_{service.upper()}_METRICS_PORT": str(free_port())}
    if service == "gateway":
        env |= {
            "PALETTE_GATEWAY_HOST": "127.0.0.1",
            "PALETTE_GATEWAY_PORT": str(gateway_port),
            "PALETTE_GATEWAY_JWT_SECRET": jwt_secret,
        }
    return env


def new_secret() -> str:
    """A JWT secret for this run's gateway (not the public dev one)."""
    return secrets.token_urlsafe(32)


def wait_http_ok(url: str, timeout: float) -> None:
    """Wait until ``GET url`` answers 200 (the last answer is in the error otherwise)."""
    last: list[str] = ["nothing answered"]

    def ok() -> bool | None:
        try:
            response = httpx.get(url, timeout=5)
        except httpx.HTTPError as exc:
            last[0] = repr(exc)
            return None
        last[0] = f"{response.status_code} {response.text[:300]}"
        return True if response.status_code == 200 else None

    try:
        wait_for(f"GET {url} answers 200", ok, timeout)
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}; last answer: {last[0]}") from None


def page_assets(html: str) -> list[str]:
    """The ``/ui/...`` scripts and style sheets a page loads (``src=``/``href=``)."""
    return re.findall(r'(?:src|href)="(/ui/[^"]+)"', html)


def check_page(base: str) -> str:
    """Check the gateway serves the built web page at ``/ui`` and each asset it loads.

    Returns:
        what was checked, for the report.

    Raises:
        RuntimeError: no page, or an asset missing or empty.
    """
    page = httpx.get(f"{base}/ui", timeout=10, follow_redirects=True)
    assets = page_assets(page.text) if page.status_code == 200 else []
    if not assets or 'id="app"' not in page.text:
        raise RuntimeError(f"GET /ui: {page.status_code}, not the built page: {page.text[:300]!r}")
    size = 0
    for asset in assets:
        got = httpx.get(f"{base}{asset}", timeout=10)
        if got.status_code != 200 or not got.content:
            raise RuntimeError(f"GET {asset}: {got.status_code}, {len(got.content)} bytes")
        size += len(got.content)
    return f"/ui 200 and its {len(assets)} assets ({size / 1e3:.0f} kB), built in stage ui"


def wait_consuming(broker: Broker, service: str, timeout: float) -> dict[str, int]:
    """Wait until each queue of ``service`` (``<service>.*``, dead letters aside) has a consumer."""

    def all_consumed() -> dict[str, int] | None:
        queues = {
            queue: count
            for queue, count in consumers(broker).items()
            if queue.startswith(f"{service}.") and not queue.endswith(".dlq")
        }
        return queues if queues and all(queues.values()) else None

    return wait_for(f"{service} consumes all its queues", all_consumed, timeout)
