"""The one-machine dev stack: SecantusDB, an S3 server and the Bedrock emulator.

Each runs as a child process on a free local port; RabbitMQ is expected to be
running already (it is checked, not started). ``env()`` gives the environment
variables that point the services at it all. The emulator delivers Bedrock-style
model invocation logs to the stack's bucket (under ``invocation_log_prefix``),
and ``env()`` points accounting at them, so calls whose answer never came are
settled from the provider's record (docs/internals.md, "Reconciliation").

Example:
    with DevStack() as stack:
        subprocess.run(["..."], env={**os.environ, **stack.env()})
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from palette.devstack import readiness
from palette.devstack.emulator_client import EmulatorControl, emulator_flags
from palette.devstack.objectstore import (
    MOTO,
    OBJECT_STORES,
    SEAWEEDFS,
    clear_master_state,
    seaweedfs_command,
    seaweedfs_env,
)
from palette.devstack.processes import ChildProcess, ProcessFailedError, free_port

DEFAULT_RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/"
DUMMY_AWS_KEY = "testing"
START_ATTEMPTS = 3
INVOCATION_LOG_PREFIX = "bedrock-invocation-logs"
# The emulator's model "runs" for its configured latency (milliseconds here), then
# bills; a call is therefore logged well within this many seconds of being sent.
EMULATOR_CALL_SECONDS = 5.0
INVOCATION_LOG_DELAY_MARGIN = 2.75


class DevStack:
    """Starts, watches and stops the dev stack's servers.

    Args:
        state_dir: where the database files and logs go; None makes a temporary
            directory that ``stop()`` removes. The database lives in
            ``<state_dir>/secantus`` and survives ``restart_database()``.
        bucket: the S3 bucket to create.
        mongo_db: the database name services use.
        rabbitmq_url: the broker (default: ``RABBITMQ_URL`` or the local guest one).
        check_rabbitmq: fail ``start()`` when the broker cannot be reached.
        emulator_options: emulator flags, e.g. ``{"latency_ms": 200, "seed": 7}``.
        pricing_file: a pricing table for the emulator and the services.
        host: the address every server listens on.
        start_timeout: seconds each server has to answer.
        db_sync_on_commit: fsync the database journal on every commit (default), so
            a killed database server keeps every acknowledged write, whatever its
            write concern. Without it only ``j: true`` writes survive SIGKILL (in
            SecantusDB even ``w: "majority"`` ones may not): writes of the last few
            hundred ms are lost. It costs ~0.3 ms per write here.
        invocation_log_prefix: where in the bucket the emulator delivers its model
            invocation logs (None: no invocation log, and accounting settles calls
            whose answer never came at their worst case).
        invocation_log_flush_ms: how often the emulator delivers them.
        object_store: ``"moto"`` (objects in memory, gone when it stops: enough
            for tests) or ``"seaweedfs"`` (objects in ``<state_dir>/s3``, kept
            across restarts and crashes: ``palette up``). See
            ``palette.devstack.objectstore``.
    """

    def __init__(
        self,
        state_dir: str | Path | None = None,
        *,
        bucket: str = "plot-palette",
        mongo_db: str = "palette",
        rabbitmq_url: str | None = None,
        check_rabbitmq: bool = True,
        emulator_options: Mapping[str, Any] | None = None,
        pricing_file: str | Path | None = None,
        host: str = "127.0.0.1",
        start_timeout: float = 60.0,
        db_sync_on_commit: bool = True,
        invocation_log_prefix: str | None = INVOCATION_LOG_PREFIX,
        invocation_log_flush_ms: float = 250.0,
        object_store: str = MOTO,
    ) -> None:
        if object_store not in OBJECT_STORES:
            raise ValueError(
                f"unknown object store {object_store!r}; expected one of {OBJECT_STORES}"
            )
        self._temporary = state_dir is None
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="palette-devstack-")).resolve()
        self.bucket = bucket
        self.mongo_db = mongo_db
        self.rabbitmq_url = rabbitmq_url or os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
        self.check_rabbitmq = check_rabbitmq
        self.emulator_options = dict(emulator_options or {})
        self.pricing_file = str(Path(pricing_file).resolve()) if pricing_file else None
        self.host = host
        self.start_timeout = start_timeout
        self.db_sync_on_commit = db_sync_on_commit
        self.invocation_log_prefix = invocation_log_prefix
        self.invocation_log_flush_ms = invocation_log_flush_ms
        self.object_store = object_store
        self.mongo_port = 0
        self.s3_port = 0
        self.emulator_port = 0
        self.database: ChildProcess | None = None
        self.s3: ChildProcess | None = None
        self.emulator: ChildProcess | None = None

    # -- addresses ---------------------------------------------------------------

    @property
    def log_dir(self) -> Path:
        """Where each server's output goes (``<name>.log``)."""
        return self.state_dir / "logs"

    @property
    def mongo_url(self) -> str:
        """MongoDB connection string of the database server."""
        return f"mongodb://{self.host}:{self.mongo_port}/?directConnection=true"

    @property
    def s3_endpoint_url(self) -> str:
        """S3 endpoint of the S3 server."""
        return f"http://{self.host}:{self.s3_port}"

    @property
    def bedrock_endpoint_url(self) -> str:
        """``endpoint_url`` for a boto3 ``bedrock-runtime`` client."""
        return f"http://{self.host}:{self.emulator_port}"

    @property
    def emulator_control_url(self) -> str:
        """Base URL of the emulator's control API (``.../_emulator``)."""
        return f"{self.bedrock_endpoint_url}/_emulator"

    def emulator_control(self) -> EmulatorControl:
        """A client of the emulator's control API."""
        return EmulatorControl(self.emulator_control_url)

    def env(self) -> dict[str, str]:
        """Environment variables that point a service at this stack."""
        env = {
            "RABBITMQ_URL": self.rabbitmq_url,
            "PALETTE_MONGO_URL": self.mongo_url,
            "PALETTE_MONGO_DB": self.mongo_db,
            "PALETTE_S3_ENDPOINT_URL": self.s3_endpoint_url,
            "PALETTE_S3_BUCKET": self.bucket,
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": DUMMY_AWS_KEY,
            "AWS_SECRET_ACCESS_KEY": DUMMY_AWS_KEY,
            "AWS_EC2_METADATA_DISABLED": "true",
            "PALETTE_BEDROCK_ENDPOINT_URL": self.bedrock_endpoint_url,
            "PALETTE_EMULATOR_URL": self.emulator_control_url,
        }
        if self.pricing_file:
            env["PALETTE_PRICING_FILE"] = self.pricing_file
        enforced = bool(self.emulator_options.get("quota_table"))  # pace to what it enforces
        env["PALETTE_GENERATOR_QUOTA_TABLE"] = "true" if enforced else "false"
        if self.invocation_log_prefix is not None:
            # Delivered every flush period; the margin covers a put slowed down by a
            # loaded machine (a record read as absent would be settled as unbilled).
            delay = self.invocation_log_flush_ms / 1000.0 + INVOCATION_LOG_DELAY_MARGIN
            env |= {
                "PALETTE_ACCOUNTING_INVOCATION_LOG_BUCKET": self.bucket,
                "PALETTE_ACCOUNTING_INVOCATION_LOG_PREFIX": self.invocation_log_prefix,
                "PALETTE_ACCOUNTING_INVOCATION_LOG_DELAY_SECONDS": f"{delay:g}",
                "PALETTE_ACCOUNTING_INVOCATION_LOG_CALL_SECONDS": f"{EMULATOR_CALL_SECONDS:g}",
            }
        return env

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> DevStack:
        """Start every server, wait until each answers, create the bucket.

        Raises:
            ProcessFailedError: a server did not come up (its log's tail included).
            ConnectionError: RabbitMQ cannot be reached (with ``check_rabbitmq``).
        """
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            if self.check_rabbitmq:
                readiness.check_rabbitmq(self.rabbitmq_url)
            with ThreadPoolExecutor(2) as pool:
                futures = [
                    pool.submit(self._start_database),
                    # The emulator delivers its invocation logs to S3: S3 first.
                    pool.submit(self._start_s3_and_emulator),
                ]
                for future in futures:
                    future.result()
        except BaseException:
            self.stop(keep_state=True)
            raise
        return self

    def stop(self, keep_state: bool = False) -> None:
        """Stop every server (their whole process groups).

        Args:
            keep_state: keep a temporary state dir (its logs) instead of removing it.
        """
        for child in (self.emulator, self.s3, self.database):
            if child is not None:
                child.stop(timeout=10.0)
        if self._temporary and not keep_state:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        # After a failure the logs are worth keeping.
        self.stop(keep_state=exc_type is not None)

    def alive(self) -> dict[str, bool]:
        """Whether each server is running."""
        children = {"database": self.database, "s3": self.s3, "emulator": self.emulator}
        return {name: c is not None and c.alive() for name, c in children.items()}

    # -- database ----------------------------------------------------------------

    def stop_database(self, kill: bool = False) -> None:
        """Stop the database server (SIGKILL with ``kill``, as a crash would)."""
        if self.database is not None:
            self.database.stop(timeout=10.0, sig=signal.SIGKILL if kill else signal.SIGTERM)

    def start_database(self) -> None:
        """Start the database server again, same port and data, and wait for it."""
        assert self.database is not None, "start() the stack first"
        self.database.start()
        self.database.wait_until(
            lambda: readiness.mongo_ping(self.mongo_url), self.start_timeout, "answering ping"
        )

    def restart_database(self, downtime: float = 0.0, kill: bool = False) -> None:
        """Stop the database server, wait ``downtime`` seconds, start it again."""
        self.stop_database(kill=kill)
        time.sleep(downtime)
        self.start_database()

    # -- starting each server ----------------------------------------------------

    def _start_with_retries(self, name: str, start_once: Callable[[], None]) -> None:
        """Start a server on a fresh free port, again if the port was taken meanwhile."""
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                start_once()
                return
            except ProcessFailedError:
                if attempt == START_ATTEMPTS:
                    raise
            child = getattr(self, name)
            if child is not None:
                child.stop(timeout=2.0)

    def _start_database(self) -> None:
        def once() -> None:
            self.mongo_port = free_port(self.host)
            storage = self.state_dir / "secantus"
            storage.mkdir(parents=True, exist_ok=True)
            argv = [sys.executable, "-m", "secantus", "--host", self.host]
            argv += ["--port", str(self.mongo_port), "--storage-path", str(storage)]
            if self.db_sync_on_commit:
                argv.append("--sync-on-commit")
            self.database = ChildProcess(
                "secantus", argv, self.log_dir / "secantus.log", cwd=self.state_dir
            )
            self.start_database()

        self._start_with_retries("database", once)

    def _start_s3(self) -> None:
        def once() -> None:
            self.s3_port = free_port(self.host)
            if self.object_store == SEAWEEDFS:
                data = self.state_dir / "s3"
                data.mkdir(parents=True, exist_ok=True)
                clear_master_state(data)
                argv = seaweedfs_command(data, self.host, self.s3_port)
                env = seaweedfs_env()
            else:
                argv = [sys.executable, "-m", "moto.server", "-H", self.host]
                argv += ["-p", str(self.s3_port)]
                env = None
            self.s3 = ChildProcess(
                f"{self.object_store}-s3",
                argv,
                self.log_dir / "s3.log",
                env=env,
                cwd=self.state_dir,
            )
            self.s3.start()
            self.s3.wait_until(
                lambda: readiness.s3_create_bucket(self.s3_endpoint_url, self.bucket),
                self.start_timeout,
                "serving S3",
            )

        self._start_with_retries("s3", once)

    def _start_s3_and_emulator(self) -> None:
        self._start_s3()
        self._start_emulator()

    def _start_emulator(self) -> None:
        port_file = self.state_dir / "emulator.port"
        port_file.unlink(missing_ok=True)
        argv = [sys.executable, "-m", "palette.devstack.bedrock_emulator", "--host", self.host]
        argv += ["--port", "0", "--port-file", str(port_file)]
        # Batch jobs read and write S3 too: the endpoint always.
        options = {"s3_endpoint_url": self.s3_endpoint_url, **self.emulator_options}
        if self.invocation_log_prefix is not None:
            options |= {
                "invocation_log_bucket": self.bucket,
                "invocation_log_prefix": self.invocation_log_prefix,
                "invocation_log_flush_ms": self.invocation_log_flush_ms,
                "invocation_log_region": self.env()["AWS_REGION"],
            }
        argv += emulator_flags(options)
        aws = {k: v for k, v in self.env().items() if k.startswith("AWS_")}
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **aws}
        if self.pricing_file:
            env["PALETTE_PRICING_FILE"] = self.pricing_file
        self.emulator = ChildProcess(
            "bedrock-emulator", argv, self.log_dir / "emulator.log", env=env, cwd=self.state_dir
        )
        self.emulator.start()
        self.emulator.wait_until(port_file.exists, self.start_timeout, "listening")
        self.emulator_port = int(port_file.read_text(encoding="utf-8"))
        self.emulator.wait_until(
            lambda: readiness.http_ok(f"{self.emulator_control_url}/health"),
            self.start_timeout,
            "healthy",
        )
