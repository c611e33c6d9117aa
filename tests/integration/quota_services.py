"""A group of the four services pacing to a quota table that lists one model (quota tests).

The group runs on a virtual host and a database of its own, with a quota table
that lists MODEL at the TPM the tests make the session's emulator enforce, a
short unavailability limit and a short pause, so an outage pauses a partition
within seconds.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from palette.devstack.client import GatewayClient
from palette.devstack.services import ServiceGroup, start_services
from palette.devstack.stack import DevStack
from palette.gateway.bearer_tokens import mint
from tests.backends import Backend
from tests.conftest import SERVICE_SETTINGS, kept_vhost_url, release_queues, vhost_name
from tests.integration.test_devstack import bedrock

MODEL = "amazon.nova-lite-v1:0"
TPM = 6_000
"""A hundred quota tokens a second: a few calls a second of a short one-step template."""


class Group:
    """Services of a group, their database and a client of their gateway."""

    def __init__(self, group: ServiceGroup, db: Any, api: GatewayClient, user: str) -> None:
        self.group, self.db, self.api, self.user = group, db, api, user


@contextmanager
def quota_services(
    devstack: DevStack,
    backend: Backend,
    jwt_secret: str,
    state: Path,
    generators: int,
    name: str,
) -> Iterator[Group]:
    """The four services with ``generators`` generators pacing to a table listing MODEL."""
    vhost = vhost_name(f"-{name}")
    url = kept_vhost_url(backend, vhost, reset=True)
    if url is None:
        pytest.fail(f"the quota tests need a virtual host of their own ({vhost!r})", pytrace=False)
    table = state / "quotas.json"
    entry = {"rpm": None, "tpm": TPM, "output_burndown": 1, "source": "test", "as_of": "2026-12-07"}
    table.write_text(json.dumps({"regions": {"us-east-1": {MODEL: entry}}}))
    database = f"palette_quota_{uuid.uuid4().hex[:8]}"
    env = {**devstack.env(), "RABBITMQ_URL": url, "PALETTE_MONGO_DB": database}
    overrides = {k: dict(v) for k, v in SERVICE_SETTINGS.items()}
    overrides["generator"] |= {
        "PALETTE_QUOTAS_FILE": str(table),
        "PALETTE_GENERATOR_QUOTA_TABLE": "true",
        "PALETTE_GENERATOR_MODEL_UNAVAILABLE_SECONDS": "4",
    }
    overrides["scheduler"] |= {
        "PALETTE_SCHEDULER_PARTITION_SIZE": "20",
        "PALETTE_SCHEDULER_PAUSE_SECONDS": "3",
        "PALETTE_SCHEDULER_PAUSE_CHECK_SECONDS": "0.5",
    }
    client: MongoClient[dict[str, Any]] = MongoClient(devstack.mongo_url, tz_aware=True)
    try:
        with start_services(
            env, generators=generators, log_dir=state / "logs", overrides=overrides
        ) as group:
            user = f"quota-{uuid.uuid4().hex[:6]}"
            api = GatewayClient(group.gateway_url, mint(user, jwt_secret))
            yield Group(group, client[database], api, user)
            api.close()
    finally:
        client.close()
        release_queues(url)


def drain(endpoint_url: str, model: str) -> None:
    """Spend the emulator's bucket of ``model`` until a call is throttled."""
    client = bedrock(endpoint_url)
    for _ in range(200):
        try:
            client.converse(
                modelId=model,
                messages=[{"role": "user", "content": [{"text": "drain"}]}],
                inferenceConfig={"maxTokens": 1000},
            )
        except client.exceptions.ThrottlingException:
            return
    raise AssertionError(f"the emulator never throttled {model}")


@contextmanager
def enforced_quota(devstack: DevStack, models: tuple[str, ...] = (MODEL,)) -> Iterator[Any]:
    """The session's emulator enforcing TPM on ``models``, drained; removed after."""
    control = devstack.emulator_control()
    for model in models:
        control.set_quota(model, tpm=TPM)
        drain(devstack.bedrock_endpoint_url, model)
    control.reset_stats()
    try:
        yield control
    finally:
        for model in models:
            control.remove_quota(model)
