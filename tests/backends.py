"""Where the integration and fault tests get RabbitMQ, MongoDB and S3: the one place that chooses.

``PALETTE_TEST_BACKEND`` picks the backend:

``devstack`` (the default)
    RabbitMQ at ``RABBITMQ_URL`` (or the local guest one), SecantusDB and moto's
    S3 server started by ``palette.devstack.stack.DevStack`` on free ports.
``containers``
    testcontainers starts real MongoDB (a one-node replica set, so transactions
    and change streams behave as in production), RabbitMQ and MinIO in Docker.
    The Bedrock emulator still runs as a local process (the dev stack's). With no
    Docker engine answering, the session fails with the reason: asking for real
    stores and silently getting the dev stack would report a pass for a run that
    never happened.

``tests/conftest.py`` opens the backend once per session
(``open_backend``) and builds its ``rabbitmq_url`` and ``devstack`` fixtures from
it; everything else it offers is unchanged. ``tests/unit/test_backends.py`` tests
the choice and the environment each backend gives the services, without Docker.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from palette.devstack import readiness
from palette.devstack.processes import free_port
from palette.devstack.stack import DevStack

BACKEND_ENV = "PALETTE_TEST_BACKEND"
DEVSTACK = "devstack"
CONTAINERS = "containers"
BACKENDS = (DEVSTACK, CONTAINERS)

# Images of the containers backend (overridable, e.g. to pin digests or use a mirror).
MONGO_IMAGE = os.environ.get("PALETTE_TEST_MONGO_IMAGE", "mongo:7.0")
RABBITMQ_IMAGE = os.environ.get("PALETTE_TEST_RABBITMQ_IMAGE", "rabbitmq:4.1-management")
MINIO_IMAGE = os.environ.get("PALETTE_TEST_MINIO_IMAGE", "minio/minio:latest")
REPLICA_SET = "rs0"
# MinIO wants a user of 3+ and a password of 8+ characters (moto takes anything).
MINIO_USER = "palette-test"
MINIO_PASSWORD = "palette-test-secret"
START_TIMEOUT = 120.0


class BackendUnavailableError(RuntimeError):
    """The chosen backend cannot run here (the message says why and what to do)."""


def selected_backend(environ: Mapping[str, str] | None = None) -> str:
    """The backend ``PALETTE_TEST_BACKEND`` names (``devstack`` when unset or empty).

    Raises:
        BackendUnavailableError: the variable names no backend.
    """
    env = os.environ if environ is None else environ
    value = env.get(BACKEND_ENV, "").strip().lower() or DEVSTACK
    if value not in BACKENDS:
        raise BackendUnavailableError(
            f"{BACKEND_ENV}={env.get(BACKEND_ENV)!r} names no test backend; "
            f"use one of {', '.join(BACKENDS)}"
        )
    return value


def docker_status(timeout: float = 5.0) -> tuple[bool, str]:
    """Whether a Docker engine answers, and if not, why."""
    try:
        import docker
    except ImportError as exc:  # pragma: no cover - testcontainers brings it
        return False, f"the docker package is not installed ({exc})"
    try:
        client = docker.from_env(timeout=int(timeout))
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"
    return True, "ok"


@dataclass(frozen=True, slots=True)
class ContainerEndpoints:
    """How to reach the containers backend's stores from this machine."""

    rabbitmq_url: str
    mongo_url: str
    s3_endpoint_url: str
    s3_access_key: str = MINIO_USER
    s3_secret_key: str = MINIO_PASSWORD


def container_env(endpoints: ContainerEndpoints, base: Mapping[str, str]) -> dict[str, str]:
    """The services' environment on the containers backend.

    ``base`` is the dev stack's (``DevStack.env()``: the emulator, region, bucket);
    the broker, database and S3 endpoints and the S3 credentials are the containers'.
    The emulator accepts any credentials, so MinIO's serve for both.
    """
    return {
        **base,
        "RABBITMQ_URL": endpoints.rabbitmq_url,
        "PALETTE_MONGO_URL": endpoints.mongo_url,
        "PALETTE_S3_ENDPOINT_URL": endpoints.s3_endpoint_url,
        "AWS_ACCESS_KEY_ID": endpoints.s3_access_key,
        "AWS_SECRET_ACCESS_KEY": endpoints.s3_secret_key,
    }


class ContainerStack(DevStack):
    """A ``DevStack`` whose broker, database and S3 are the containers' ones.

    Only the Bedrock emulator starts as a process; addresses, ``env()`` and the
    database restart of fault tests go to the containers.
    """

    def __init__(self, containers: StoreContainers, **kwargs: Any) -> None:
        kwargs["rabbitmq_url"] = containers.endpoints.rabbitmq_url
        super().__init__(**kwargs)
        self.containers = containers

    @property
    def mongo_url(self) -> str:
        """MongoDB connection string of the replica set's one node."""
        return self.containers.endpoints.mongo_url

    @property
    def s3_endpoint_url(self) -> str:
        """S3 endpoint of MinIO."""
        return self.containers.endpoints.s3_endpoint_url

    def env(self) -> dict[str, str]:
        """Environment variables that point a service at the containers and the emulator."""
        return container_env(self.containers.endpoints, super().env())

    def start(self) -> ContainerStack:
        """Start the emulator; the containers are already up (and the bucket made)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        try:
            readiness.check_rabbitmq(self.rabbitmq_url)
            self.containers.create_bucket(self.bucket)
            self._start_emulator()
        except BaseException:
            self.stop(keep_state=True)
            raise
        return self

    def alive(self) -> dict[str, bool]:
        """Whether the emulator runs and each container is running."""
        return {**self.containers.alive(), "emulator": bool(super().alive()["emulator"])}

    def stop_database(self, kill: bool = False) -> None:
        """Stop the MongoDB container (killed with ``kill``, as a crash would)."""
        self.containers.stop_database(kill=kill)

    def start_database(self) -> None:
        """Start the MongoDB container again (same port, same data) and wait for it."""
        self.containers.start_database()


@dataclass
class StoreContainers:
    """MongoDB (one-node replica set), RabbitMQ and MinIO, started by testcontainers."""

    host_ports: dict[str, int] = field(default_factory=dict)
    _containers: dict[str, Any] = field(default_factory=dict)
    _host: str = "127.0.0.1"

    @property
    def endpoints(self) -> ContainerEndpoints:
        """Addresses of the running containers."""
        p = self.host_ports
        return ContainerEndpoints(
            rabbitmq_url=f"amqp://guest:guest@{self._host}:{p['rabbitmq']}/",
            mongo_url=f"mongodb://{self._host}:{p['mongodb']}/?directConnection=true",
            s3_endpoint_url=f"http://{self._host}:{p['minio']}",
        )

    def start(self) -> StoreContainers:
        """Start the three containers and wait until each serves."""
        from testcontainers.core.container import DockerContainer

        # Fixed host ports (not Docker's ephemeral ones): they survive a restart.
        self.host_ports = {name: free_port() for name in ("rabbitmq", "mongodb", "minio")}
        specs = {
            "mongodb": DockerContainer(MONGO_IMAGE)
            .with_command(["--replSet", REPLICA_SET, "--bind_ip_all"])
            .with_bind_ports(27017, self.host_ports["mongodb"]),
            "rabbitmq": DockerContainer(RABBITMQ_IMAGE).with_bind_ports(
                5672, self.host_ports["rabbitmq"]
            ),
            "minio": DockerContainer(MINIO_IMAGE)
            .with_command(["server", "/data"])
            .with_env("MINIO_ROOT_USER", MINIO_USER)
            .with_env("MINIO_ROOT_PASSWORD", MINIO_PASSWORD)
            .with_bind_ports(9000, self.host_ports["minio"]),
        }
        try:
            for name, container in specs.items():
                container.start()
                self._containers[name] = container
            self._host = specs["mongodb"].get_container_host_ip()
            self._wait(lambda: readiness.check_rabbitmq(self.endpoints.rabbitmq_url), "rabbitmq")
            self._wait(lambda: readiness.mongo_ping(self.endpoints.mongo_url), "mongodb")
            self._initiate_replica_set()
            self._wait(self._s3_ready, "minio")
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Remove every container (and its data)."""
        for container in self._containers.values():
            with contextlib.suppress(Exception):
                container.stop()
        self._containers.clear()

    def alive(self) -> dict[str, bool]:
        """Whether each container is running."""
        out = {}
        for name, container in self._containers.items():
            wrapped = container.get_wrapped_container()
            wrapped.reload()
            out[name] = wrapped.status == "running"
        return out

    def stop_database(self, kill: bool = False) -> None:
        """Stop (or kill) the MongoDB container, keeping its data."""
        wrapped = self._containers["mongodb"].get_wrapped_container()
        if kill:
            wrapped.kill()
        else:
            wrapped.stop(timeout=10)

    def start_database(self) -> None:
        """Start the MongoDB container again and wait until it is primary."""
        self._containers["mongodb"].get_wrapped_container().start()
        self._wait(self._is_primary, "mongodb primary")

    def add_vhost(self, name: str) -> str:
        """Create the virtual host ``name`` on the RabbitMQ container; its URL for guest."""
        container = self._containers["rabbitmq"]
        for argv in (
            ["rabbitmqctl", "add_vhost", name],
            ["rabbitmqctl", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
        ):
            code, output = container.exec(argv)
            if code != 0 and b"already" not in output:
                raise RuntimeError(f"{' '.join(argv)} failed ({code}): {output!r}")
        return self.endpoints.rabbitmq_url.rstrip("/") + "/" + quote(name, safe="")

    def create_bucket(self, bucket: str) -> None:
        """Create ``bucket`` in MinIO (fine if it exists)."""
        client = self._s3()
        names = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        if bucket not in names:
            client.create_bucket(Bucket=bucket)

    # -- readiness ---------------------------------------------------------------

    def _s3(self) -> Any:
        import boto3

        e = self.endpoints
        return boto3.session.Session().client(
            "s3",
            endpoint_url=e.s3_endpoint_url,
            region_name="us-east-1",
            aws_access_key_id=e.s3_access_key,
            aws_secret_access_key=e.s3_secret_key,
        )

    def _s3_ready(self) -> bool:
        self._s3().list_buckets()
        return True

    def _initiate_replica_set(self) -> None:
        from pymongo import MongoClient
        from pymongo.errors import OperationFailure

        client: MongoClient[dict[str, Any]] = MongoClient(self.endpoints.mongo_url)
        try:
            config = {"_id": REPLICA_SET, "members": [{"_id": 0, "host": "localhost:27017"}]}
            with contextlib.suppress(OperationFailure):  # already initiated
                client.admin.command("replSetInitiate", config)
        finally:
            client.close()
        self._wait(self._is_primary, "mongodb primary")

    def _is_primary(self) -> bool:
        from pymongo import MongoClient

        client: MongoClient[dict[str, Any]] = MongoClient(
            self.endpoints.mongo_url, serverSelectionTimeoutMS=1000
        )
        try:
            return bool(client.admin.command("hello").get("isWritablePrimary"))
        finally:
            client.close()

    @staticmethod
    def _wait(check: Callable[[], bool | None], what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        last: BaseException | None = None
        while time.monotonic() < deadline:
            try:
                if check() is not False:
                    return
            except Exception as exc:
                last = exc
            time.sleep(0.5)
        raise TimeoutError(f"{what} did not become ready in {START_TIMEOUT:.0f}s: {last!r}")


@dataclass
class Backend:
    """The stores of one test session."""

    name: str
    containers: StoreContainers | None = None

    @property
    def rabbitmq_url(self) -> str | None:
        """The broker of this backend, or None to use the configured one (dev stack)."""
        return self.containers.endpoints.rabbitmq_url if self.containers else None

    def stack(self, **kwargs: Any) -> DevStack:
        """The (unstarted) stack of this backend, with ``DevStack``'s arguments."""
        if self.containers is None:
            return DevStack(**kwargs)
        return ContainerStack(self.containers, **kwargs)


@contextlib.contextmanager
def open_backend(
    environ: Mapping[str, str] | None = None,
    *,
    docker_check: Callable[[], tuple[bool, str]] = docker_status,
    start_containers: Callable[[], StoreContainers] | None = None,
) -> Iterator[Backend]:
    """The backend ``PALETTE_TEST_BACKEND`` chooses, started for the session.

    Raises:
        BackendUnavailableError: an unknown backend, or containers without Docker.
    """
    name = selected_backend(environ)
    if name == DEVSTACK:
        yield Backend(DEVSTACK)
        return
    ok, reason = docker_check()
    if not ok:
        raise BackendUnavailableError(
            f"{BACKEND_ENV}={CONTAINERS} runs the tests on MongoDB, RabbitMQ and MinIO in "
            f"Docker containers, but no Docker engine answers here ({reason}). Start one "
            f"(or point DOCKER_HOST at one), or unset {BACKEND_ENV} to use the dev stack."
        )
    containers = (start_containers or (lambda: StoreContainers().start()))()
    try:
        yield Backend(CONTAINERS, containers)
    finally:
        containers.stop()
