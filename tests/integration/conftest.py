"""Shared fixtures of the integration tests.

One dev stack and one set of service processes serve the whole session, on a
RabbitMQ virtual host of their own (created with ``rabbitmqctl`` when it is
available), so a run never sees another run's messages.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from pymongo import MongoClient

from palette.devstack.client import GatewayClient
from palette.devstack.services import ServiceGroup, start_services
from palette.devstack.stack import DEFAULT_RABBITMQ_URL, DevStack
from palette.gateway.settings import GatewaySettings
from palette.gateway.tokens import mint

SERVICE_SETTINGS = {
    "scheduler": {
        "PALETTE_SCHEDULER_PARTITION_SIZE": "50",
        "PALETTE_SCHEDULER_PART_SIZE": "10",
        "PALETTE_SCHEDULER_WINDOW": "3",
    },
    "generator": {"PALETTE_GENERATOR_CONCURRENCY": "16"},
}


def _rabbitmqctl(*args: str) -> bool:
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        return False
    return subprocess.run([tool, *args], capture_output=True, check=False).returncode == 0


@pytest.fixture(scope="session")
def rabbitmq_url() -> Iterator[str]:
    """A fresh virtual host on the local broker (or the configured URL as it is)."""
    base = os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
    vhost = f"palette-test-{uuid.uuid4().hex[:8]}"
    if not base.startswith("amqp://guest:guest@127.0.0.1") or not _rabbitmqctl("add_vhost", vhost):
        yield base
        return
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    try:
        yield base.rstrip("/") + "/" + quote(vhost, safe="")
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def devstack(rabbitmq_url: str) -> Iterator[DevStack]:
    """SecantusDB, moto S3 and the Bedrock emulator on free ports; RabbitMQ checked.

    Tests that change the emulator's configuration restore it
    (``devstack.emulator_control().reset()``); tests use fresh uuids for their data.
    """
    with DevStack(rabbitmq_url=rabbitmq_url, emulator_options={"latency_ms": 5}) as stack:
        yield stack


@pytest.fixture(scope="session")
def devstack_env(devstack: DevStack) -> dict[str, str]:
    """Environment variables that point a service at the session's dev stack."""
    return devstack.env()


@pytest.fixture(scope="session")
def services(
    devstack: DevStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceGroup]:
    """The four services as separate processes (two generators)."""
    log_dir = tmp_path_factory.mktemp("service-logs")
    with start_services(
        devstack.env(), generators=2, log_dir=log_dir, overrides=SERVICE_SETTINGS
    ) as group:
        yield group


@pytest.fixture(scope="session")
def jwt_secret() -> str:
    """The gateway's development signing secret."""
    return GatewaySettings().jwt_secret.get_secret_value()


@pytest.fixture
def user() -> str:
    """A fresh user id for one test."""
    return f"user-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def api(services: ServiceGroup, jwt_secret: str, user: str) -> Iterator[GatewayClient]:
    """A REST client acting as a fresh user."""
    client = GatewayClient(services.gateway_url, mint(user, jwt_secret))
    yield client
    client.close()


@pytest.fixture(scope="session")
def mongo(devstack: DevStack) -> Iterator[Any]:
    """The services' database (read-only use in assertions)."""
    client: MongoClient[dict[str, Any]] = MongoClient(devstack.mongo_url, tz_aware=True)
    yield client[devstack.mongo_db]
    client.close()


@pytest.fixture(scope="session")
def s3(devstack: DevStack) -> Any:
    """A boto3 S3 client of the dev stack."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=devstack.s3_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


@pytest.fixture(scope="session")
def examples() -> Path:
    """The repository's examples folder."""
    return Path(__file__).resolve().parents[2] / "examples"
