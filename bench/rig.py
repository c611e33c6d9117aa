"""The system under test: the dev stack, the services as processes, and a tap on the broker.

One ``Rig`` serves a whole run. Gateway, scheduler and accounting start once;
generators are (re)started per measurement with the count and concurrency it
needs. Everything talks to RabbitMQ on one fixed virtual host
(``PALETTE_BENCH_VHOST``, default ``palette-bench``) whose queues are deleted
first, so a run never sees an earlier run's messages.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aio_pika
import psutil
from pymongo import MongoClient

from bench.profiling import Profiler
from palette.common import messages as m
from palette.common.topology import BROADCAST, EVENTS, ROUTES
from palette.devstack import readiness
from palette.devstack.client import GatewayClient
from palette.devstack.emulator_client import EmulatorControl
from palette.devstack.queues import delete_queues
from palette.devstack.services import ServiceProcess, start_services
from palette.devstack.stack import DEFAULT_RABBITMQ_URL, DevStack

DEFAULT_VHOST = "palette-bench"
READY_SECONDS = 30.0

SERVICE_SETTINGS: dict[str, dict[str, str]] = {
    # The per-user request limit and active-job cap are policies, not costs: the
    # gateway figure offers 200 requests/s as one user, the overshoot figure runs
    # 20 jobs at once.
    "gateway": {
        "PALETTE_GATEWAY_RATE_LIMIT_PER_SECOND": "100000",
        "PALETTE_GATEWAY_RATE_LIMIT_BURST": "100000",
        "PALETTE_GATEWAY_MAX_ACTIVE_JOBS": "1000",
    },
}


def broker_url(vhost: str) -> str:
    """The AMQP URL of ``vhost`` on the broker ``RABBITMQ_URL`` names (created if missing).

    ``rabbitmqctl`` creates the vhost once and grants guest on it; where it is
    not at hand (or the broker is not the local guest one), the vhost must exist.
    """
    base = os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL).rstrip("/")
    tool = shutil.which("rabbitmqctl")
    if tool and base.startswith("amqp://guest:guest@127.0.0.1"):
        listed = subprocess.run(
            [tool, "-q", "list_vhosts"], capture_output=True, text=True, check=False, timeout=60
        )
        if vhost not in listed.stdout.split():
            subprocess.run([tool, "add_vhost", vhost], capture_output=True, check=False)
            subprocess.run(
                [tool, "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
                capture_output=True,
                check=False,
            )
    return f"{base}/{quote(vhost, safe='')}"


class EventTap:
    """Notes when the broker carried ``BudgetExceeded`` and ``JobStopped`` for each job.

    A private queue bound beside the services' own: it changes nothing they
    receive. Times are wall-clock seconds (``time.time()``) at receipt.
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self.exceeded: dict[str, float] = {}
        self.stopped: dict[str, float] = {}
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="event-tap", daemon=True)

    def start(self) -> EventTap:
        """Start listening; returns once the queue is bound."""
        self._thread.start()
        if not self._ready.wait(30) or self._error is not None:
            raise RuntimeError(f"the event tap did not start: {self._error}")
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._loop is not None and self._done is not None:
            self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join(10)

    def _run(self) -> None:
        try:
            asyncio.run(self._listen())
        except BaseException as exc:
            self._error = exc
            self._ready.set()

    async def _listen(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        connection = await aio_pika.connect(self._url, timeout=30)
        async with connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(exclusive=True, auto_delete=True)
            events = await channel.get_exchange(EVENTS.name)
            broadcast = await channel.get_exchange(BROADCAST.name)
            await queue.bind(events, routing_key=ROUTES[m.BudgetExceeded][1])
            await queue.bind(broadcast)
            await queue.consume(self._received, no_ack=True)
            self._ready.set()
            await self._done.wait()

    async def _received(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        at = time.time()
        if message.type == m.BudgetExceeded.__name__:
            job = m.BudgetExceeded.model_validate_json(message.body).job_id
            self.exceeded.setdefault(job, at)
        elif message.type == m.JobStopped.__name__:
            job = m.JobStopped.model_validate_json(message.body).job_id
            self.stopped.setdefault(job, at)


class Rig:
    """The stack, the services and the clients a measurement needs.

    Args:
        vhost: the RabbitMQ virtual host (kept between runs, its queues emptied).
        keep_logs: keep the state directory (logs) after a successful run.
        profiler: samples the services it names while they run.
    """

    def __init__(
        self, vhost: str = DEFAULT_VHOST, keep_logs: bool = False, profiler: Profiler | None = None
    ) -> None:
        self.vhost = vhost
        self.profiler = profiler
        self.keep_logs = keep_logs
        self.state_dir = Path(tempfile.mkdtemp(prefix="palette-bench-"))
        self.log_dir = self.state_dir / "services"
        self.url = ""
        self.stack: DevStack | None = None
        self.base: dict[str, ServiceProcess] = {}
        self._settings: dict[str, dict[str, str]] = {}
        self.generators: list[ServiceProcess] = []
        self.tap: EventTap | None = None
        self._mongo: MongoClient[dict[str, Any]] | None = None
        self._clients: dict[str, GatewayClient] = {}
        self._secret = ""

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Rig:
        """Empty the vhost's queues, start the stack, the base services and the tap."""
        from palette.gateway.settings import GatewaySettings

        self.url = broker_url(self.vhost)
        asyncio.run(delete_queues(self.url))
        self.stack = DevStack(self.state_dir / "stack", rabbitmq_url=self.url).start()
        group = start_services(
            self.stack.env(), generators=0, log_dir=self.log_dir, overrides=SERVICE_SETTINGS
        )
        self.base = {s.service: s for s in group}
        for service in group:
            self._profile(service)
        self._mongo = MongoClient(self.stack.mongo_url, tz_aware=True)
        self._secret = GatewaySettings().jwt_secret.get_secret_value()
        self.tap = EventTap(self.url).start()
        return self

    def stop(self, failed: bool = False) -> None:
        """Stop everything; the logs stay when something failed (or ``keep_logs``)."""
        for client in self._clients.values():
            client.close()
        if self.tap is not None:
            self.tap.stop()
        services = [*self.generators, *self.base.values()]
        for service in services:
            if service.alive():
                service.kill(15)
        for service in services:
            service.stop(10.0)
        if self.profiler is not None:
            self.profiler.stop()
        if self._mongo is not None:
            self._mongo.close()
        if self.stack is not None:
            self.stack.stop(keep_state=True)
        if not (failed or self.keep_logs):
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def use_generators(
        self,
        count: int,
        concurrency: int,
        extra: Mapping[str, str] | None = None,
        *,
        fresh: bool = False,
    ) -> list[ServiceProcess]:
        """Have ``count`` generators of ``concurrency`` running, ready.

        Generators already running with the same settings are kept (extra ones
        stopped, missing ones started) unless ``fresh`` asks for new processes.
        """
        assert self.stack is not None, "start() the rig first"
        env = {
            **self.stack.env(),
            "PALETTE_GENERATOR_CONCURRENCY": str(concurrency),
            **(extra or {}),
        }
        same = [g for g in self.generators if g.env.items() >= env.items() and g.alive()]
        keep = [] if fresh else same[:count]
        for generator in self.generators:
            if generator not in keep:
                generator.stop(10.0)
        names = {g.name for g in keep}
        free = (f"generator-{k}" for k in range(1000) if f"generator-{k}" not in names)
        started = [
            ServiceProcess("generator", env, self.log_dir, name=next(free))
            for _ in range(count - len(keep))
        ]
        for generator in started:
            generator.start()
        for generator in started:
            generator.wait_ready(90.0)
            self._profile(generator)
        self.generators = keep + started
        return self.generators

    def fresh_database(self) -> None:
        """Restart the database server (same data) and wait until the services use it again.

        SecantusDB keeps a record of every retryable write for 30 minutes and, on
        each write, scans them all, sorting them once there are more than 10,000
        (``secantus/transactions.py``, ``_prune_retryable_locked``): after a few
        thousand records of a run, it spent most of its CPU there and every
        later measurement would pay for the earlier ones. A restart empties it.
        """
        assert self.stack is not None
        self.stack.restart_database()
        deadline = time.monotonic() + READY_SECONDS
        while not _answers(f"{self.gateway_url}/ready"):
            if time.monotonic() > deadline:
                raise RuntimeError("the gateway is not ready after the database restarted")
            time.sleep(0.1)

    def configure(self, service: str, settings: Mapping[str, str]) -> None:
        """Run the base ``service`` with ``settings`` on top of the run's (restart if needed).

        An empty mapping returns it to the run's settings.
        """
        assert self.stack is not None, "start() the rig first"
        current = self.base[service]
        if current.alive() and self._settings.get(service, {}) == dict(settings):
            return
        current.stop(10.0)
        env = {**self.stack.env(), **SERVICE_SETTINGS.get(service, {}), **settings}
        replacement = ServiceProcess(service, env, self.log_dir)
        replacement.start()
        replacement.wait_ready(90.0)
        self._profile(replacement)
        self.base[service] = replacement
        self._settings[service] = dict(settings)

    def _profile(self, service: ServiceProcess) -> None:
        if self.profiler is not None:
            self.profiler.attach(service)

    # ---------------------------------------------------------------- clients

    @property
    def emulator(self) -> EmulatorControl:
        """The Bedrock emulator's control API."""
        assert self.stack is not None
        return self.stack.emulator_control()

    @property
    def db(self) -> Any:
        """The services' database (read only)."""
        assert self._mongo is not None
        assert self.stack is not None
        return self._mongo[self.stack.mongo_db]

    @property
    def gateway_url(self) -> str:
        """Base URL of the gateway."""
        return self.base["gateway"].url

    def token(self, user: str) -> str:
        """A bearer token for ``user``."""
        from palette.gateway.bearer_tokens import mint

        return mint(user, self._secret, ttl_seconds=6 * 3600)

    def api(self, user: str) -> GatewayClient:
        """A REST client acting as ``user`` (one per user, reused)."""
        if user not in self._clients:
            self._clients[user] = GatewayClient(self.gateway_url, self.token(user))
        return self._clients[user]

    def service_processes(self) -> dict[str, psutil.Process]:
        """The four services' processes (every generator), by instance name."""
        return {s.name: psutil.Process(s.pid) for s in [*self.base.values(), *self.generators]}

    def latency(self, latency_ms: float, jitter_ms: float = 0.0) -> None:
        """Set the emulated model latency."""
        self.emulator.configure(latency_ms=latency_ms, jitter_ms=jitter_ms)


def _answers(url: str) -> bool:
    try:
        return readiness.http_ok(url)
    except OSError:  # refused, or an error status (urllib's HTTPError)
        return False


def wall_time(iso: str) -> float:
    """An ISO timestamp (the emulator's billing log) as ``time.time()`` seconds."""
    moment = datetime.fromisoformat(iso)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
