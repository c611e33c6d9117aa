"""Fixtures of the fault suite: a broker, stores and services it may break.

The suite has its own RabbitMQ node (``broker.PrivateRabbit``) and its own dev
stack (SecantusDB, moto S3, the Bedrock emulator) on it, so stopping the broker
or the database never touches another run. Each case starts its own service
processes (``fault_services``), with the settings it needs, and stops them.
Every case's counters are printed, one line each, at the end of the session
(and appended to ``$PALETTE_FAULT_RESULTS`` when that names a file).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from pymongo import MongoClient

from palette.devstack.client import GatewayClient
from palette.devstack.services import ServiceGroup, start_services
from palette.devstack.stack import DevStack
from palette.gateway.bearer_tokens import mint
from palette.gateway.settings import GatewaySettings
from tests.examples import SEEDS
from tests.faults import harness
from tests.faults.broker import BrokerUnavailableError, PrivateRabbit
from tests.integration.waiting import wait_job_ended

# Small partitions and parts, so a job has many of each; short claims, so a
# killed generator's partition is taken over quickly.
FAULT_SETTINGS: dict[str, dict[str, str]] = {
    "scheduler": {
        "PALETTE_SCHEDULER_PARTITION_SIZE": "40",
        "PALETTE_SCHEDULER_WINDOW": "3",
    },
    "generator": {
        "PALETTE_GENERATOR_CONCURRENCY": "8",
        "PALETTE_GENERATOR_PART_SIZE": "10",
        "PALETTE_GENERATOR_CLAIM_TTL_SECONDS": "3",
        "PALETTE_GENERATOR_BACKOFF_BASE": "0.05",
        "PALETTE_GENERATOR_BACKOFF_MAX": "0.5",
        "PALETTE_GENERATOR_MODEL_CALL_TIMEOUT": "5",
    },
}
FAULT_CASE_TIMEOUT = 300


@pytest.fixture(scope="session")
def fault_broker() -> Iterator[PrivateRabbit]:
    """The suite's own RabbitMQ node (stopped and removed at the end, pass or fail).

    Its directory is a fresh one under the system's temporary directory, not
    pytest's (which the ``rabbitmq`` user running the node cannot enter).
    """
    base = Path(tempfile.mkdtemp(prefix="palette-fault-rabbit-"))
    try:
        node = PrivateRabbit(base)
    except BrokerUnavailableError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        node.start()
        yield node
    finally:
        node.stop()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def fault_stack(fault_broker: PrivateRabbit) -> Iterator[DevStack]:
    """SecantusDB, moto S3 and the emulator, with services pointed at the suite's broker."""
    with DevStack(rabbitmq_url=fault_broker.url, emulator_options={"latency_ms": 20}) as stack:
        yield stack


@pytest.fixture
def emulator(fault_stack: DevStack) -> Iterator[Any]:
    """The emulator's control client; its configuration is reset after the case."""
    control = fault_stack.emulator_control()
    yield control
    control.reset()
    control.configure(latency_ms=20)


@pytest.fixture(scope="session")
def fault_mongo(fault_stack: DevStack) -> Iterator[Any]:
    """The fault stack's database (read-only use in assertions)."""
    client: MongoClient[dict[str, Any]] = MongoClient(
        fault_stack.mongo_url, tz_aware=True, serverSelectionTimeoutMS=60_000
    )
    yield client[fault_stack.mongo_db]
    client.close()


@pytest.fixture(scope="session")
def fault_s3(fault_stack: DevStack) -> Any:
    """A boto3 S3 client of the fault stack."""
    env = fault_stack.env()
    return boto3.session.Session().client(
        "s3",
        endpoint_url=fault_stack.s3_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
    )


StartServices = Callable[..., ServiceGroup]


@pytest.fixture
def fault_services(
    fault_stack: DevStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[StartServices]:
    """Start the four services for one case (``generators=``, ``overrides=``); stopped after."""
    started: list[ServiceGroup] = []

    def start(
        generators: int = 2, overrides: Mapping[str, Mapping[str, str]] | None = None
    ) -> ServiceGroup:
        merged: dict[str, dict[str, str]] = {k: dict(v) for k, v in FAULT_SETTINGS.items()}
        for name, extra in (overrides or {}).items():
            merged.setdefault(name, {}).update(extra)
        group = start_services(
            fault_stack.env(),
            generators=generators,
            log_dir=tmp_path_factory.mktemp("fault-services"),
            overrides=merged,
        )
        started.append(group)
        return group

    yield start
    for group in started:
        group.stop()


@pytest.fixture
def fault_api() -> Iterator[Callable[[ServiceGroup], GatewayClient]]:
    """A REST client of a fresh user on a started group's gateway."""
    secret = GatewaySettings().jwt_secret.get_secret_value()
    clients: list[GatewayClient] = []

    def make(group: ServiceGroup) -> GatewayClient:
        client = GatewayClient(group.gateway_url, mint(f"fault-{uuid.uuid4().hex[:8]}", secret))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture(scope="session")
def seeds_file() -> Path:
    """The repository's example seed records."""
    return SEEDS


@dataclass
class Rig:
    """What a fault case works with: the stores, the emulator, and starting services."""

    stack: DevStack
    mongo: Any
    s3: Any
    seeds: Path
    emulator: Any
    start: StartServices
    client: Callable[[ServiceGroup], GatewayClient]

    def services(
        self, generators: int = 2, overrides: Mapping[str, Mapping[str, str]] | None = None
    ) -> tuple[ServiceGroup, GatewayClient]:
        """Start the four services; also a REST client of a fresh user on their gateway."""
        group = self.start(generators=generators, overrides=overrides)
        return group, self.client(group)

    def count(self, case: str, job: dict[str, Any], started: float) -> harness.Counters:
        """The finished job's four counters (``harness.count``)."""
        return harness.count(case, self.stack, self.mongo, self.s3, job, started)

    def final(self, job: dict[str, Any]) -> dict[str, Any]:
        """Wait until the job is final and exported; its document."""
        return wait_job_ended(self.mongo, job["id"], FAULT_CASE_TIMEOUT)


@pytest.fixture
def rig(
    fault_stack: DevStack,
    fault_mongo: Any,
    fault_s3: Any,
    seeds_file: Path,
    emulator: Any,
    fault_services: StartServices,
    fault_api: Callable[[ServiceGroup], GatewayClient],
) -> Rig:
    """The fault case's rig."""
    return Rig(fault_stack, fault_mongo, fault_s3, seeds_file, emulator, fault_services, fault_api)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print every case's counters, one line each."""
    if not harness.RESULTS:
        return
    terminalreporter.section("fault counters (lost, duplicated, cost diff, overspend)")
    for result in harness.RESULTS:
        terminalreporter.write_line(result.line())
    target = os.environ.get("PALETTE_FAULT_RESULTS")
    if target:
        harness.write_results(Path(target))
