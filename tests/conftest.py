"""Shared fixtures of the integration and fault tests (session-wide, created on first use).

One dev stack and one set of service processes serve the whole session, on a
RabbitMQ virtual host kept for tests whose queues are deleted at the start, so a
run never sees an earlier run's messages.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import boto3
import pytest
from pymongo import MongoClient

from palette.devstack.client import GatewayClient
from palette.devstack.queues import delete_queues
from palette.devstack.services import ServiceGroup, start_services
from palette.devstack.stack import DEFAULT_RABBITMQ_URL, DevStack
from palette.gateway.bearer_tokens import mint
from palette.gateway.settings import GatewaySettings
from tests.backends import Backend, BackendUnavailableError, open_backend
from tests.examples import EXAMPLES

WEBHOOK_TEST_SETTINGS = {
    "PALETTE_WEBHOOK_ALLOWED_HOSTS": '["localhost"]',
    "PALETTE_ACCOUNTING_WEBHOOK_RETRY_INITIAL_SECONDS": "0.2",
    "PALETTE_ACCOUNTING_WEBHOOK_RETRY_MAX_INTERVAL_SECONDS": "1",
    "PALETTE_ACCOUNTING_WEBHOOK_RETRY_FOR_SECONDS": "30",
    "PALETTE_ACCOUNTING_WEBHOOK_POLL_SECONDS": "0.2",
    "PALETTE_ACCOUNTING_WEBHOOK_TIMEOUT_SECONDS": "3",
    "PALETTE_ACCOUNTING_WEBHOOK_CLAIM_SECONDS": "4",
}
SERVICE_SETTINGS = {
    "scheduler": {
        "PALETTE_SCHEDULER_PARTITION_SIZE": "50",
        "PALETTE_SCHEDULER_WINDOW": "3",
    },
    # A preview's reservation nobody settles is released a second after its
    # deadline (test_preview_ledger.py waits for that). Webhooks may reach the
    # tests' receivers on localhost and are retried within a second or so, for 30 s.
    "accounting": {
        "PALETTE_ACCOUNTING_PREVIEW_HOLD_SECONDS": "1",
        "PALETTE_ACCOUNTING_PREVIEW_SWEEP_SECONDS": "0.5",
        **WEBHOOK_TEST_SETTINGS,
    },
    "gateway": {"PALETTE_WEBHOOK_ALLOWED_HOSTS": '["localhost"]'},
    # Parts close by size alone here (a record never waits 30 s): the
    # observability test counts them.
    "generator": {
        "PALETTE_GENERATOR_CONCURRENCY": "16",
        "PALETTE_GENERATOR_PART_SIZE": "10",
        "PALETTE_GENERATOR_PART_FLUSH_SECONDS": "30",
        # Batch jobs run for the emulator's batch_delay_ms (0 here): follow them closely.
        "PALETTE_GENERATOR_BATCH_POLL_SECONDS": "0.1",
    },
}


def _rabbitmqctl(*args: str) -> bool:
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        return False
    try:
        done = subprocess.run([tool, *args], capture_output=True, check=False, timeout=60)
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


@pytest.fixture(scope="session")
def test_backend() -> Iterator[Backend]:
    """The stores of this session, as ``PALETTE_TEST_BACKEND`` chooses (tests/backends.py)."""
    unavailable = None
    try:
        with open_backend() as backend:
            yield backend
    except BackendUnavailableError as exc:
        unavailable = str(exc)
    if unavailable is not None:
        pytest.fail(unavailable, pytrace=False)


@pytest.fixture(scope="session")
def rabbitmq_url(test_backend: Backend) -> Iterator[str]:
    """The test virtual host on the local broker, its queues deleted first.

    One vhost (``PALETTE_TEST_VHOST``, default ``palette-test``) is created once
    and kept: creating and deleting a vhost of quorum queues per session is slow
    on RabbitMQ and piles up when runs are interrupted. Where ``rabbitmqctl`` is
    not at hand the configured URL is used as it is. On the containers backend:
    the RabbitMQ container, a broker of its own.
    """
    if test_backend.rabbitmq_url is not None:
        yield test_backend.rabbitmq_url
        return
    base = os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
    url = kept_vhost_url(test_backend, vhost_name()) or base
    asyncio.run(delete_queues(url))
    yield url
    release_queues(url)


def release_queues(url: str) -> None:
    """Delete the system's queues on ``url`` once its services have stopped.

    An idle vhost keeps nothing open: a quorum queue holds file handles of the
    broker (927 of them where RabbitMQ has its default limit) for as long as it
    exists, so queues left by finished runs would starve the next ones. A broker
    that does not answer is left as it is (the next run deletes them first).
    """
    try:
        asyncio.run(delete_queues(url))
    except Exception as exc:  # cleanup after the tests: they have their result
        warnings.warn(f"could not delete the queues on {url}: {exc!r}", stacklevel=1)


def vhost_name(suffix: str = "") -> str:
    """The name of this run's virtual host (``PALETTE_TEST_VHOST``), with ``suffix``.

    Under pytest-xdist each worker has a vhost of its own (``...-gw0``, ``...-gw1``):
    the workers' systems never share a queue.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return (
        os.environ.get("PALETTE_TEST_VHOST", "palette-test")
        + (f"-{worker}" if worker else "")
        + suffix
    )


def kept_vhost_url(test_backend: Backend, vhost: str, *, reset: bool = False) -> str | None:
    """The URL of ``vhost`` on this session's broker, created once and kept (never deleted).

    None where it cannot be created (no ``rabbitmqctl`` for the local broker, or
    a broker other than the local guest one). ``reset`` deletes the system's
    queues on it first.
    """
    url: str | None = None
    if test_backend.containers is not None:
        url = test_backend.containers.add_vhost(vhost)
    else:
        base = os.environ.get("RABBITMQ_URL", DEFAULT_RABBITMQ_URL)
        if base.startswith("amqp://guest:guest@127.0.0.1") and (
            _rabbitmqctl("add_vhost", vhost) or _rabbitmqctl("list_permissions", "-p", vhost)
        ):
            _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
            url = base.rstrip("/") + "/" + quote(vhost, safe="")
    if url is not None and reset:
        asyncio.run(delete_queues(url))
    return url


@pytest.fixture(scope="session")
def devstack(rabbitmq_url: str, test_backend: Backend) -> Iterator[DevStack]:
    """SecantusDB, moto S3 and the Bedrock emulator on free ports; RabbitMQ checked.

    On the containers backend, MongoDB and S3 are the containers' (a ``DevStack``
    all the same: tests/backends.py). Tests that change the emulator's
    configuration restore it (``devstack.emulator_control().reset()``); tests use
    fresh uuids for their data.
    """
    stack = test_backend.stack(rabbitmq_url=rabbitmq_url, emulator_options={"latency_ms": 5})
    with stack:
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
        aws_access_key_id=devstack.env()["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=devstack.env()["AWS_SECRET_ACCESS_KEY"],
    )


@pytest.fixture(scope="session")
def examples() -> Path:
    """The repository's examples folder."""
    return EXAMPLES


from tests.integration.gateway_fixtures import *  # noqa: E402, F403 - gateway fixtures
