"""Shared fixtures of the integration tests: one dev stack for the whole session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from palette.devstack.stack import DevStack


@pytest.fixture(scope="session")
def devstack() -> Iterator[DevStack]:
    """SecantusDB, moto S3 and the Bedrock emulator on free ports; RabbitMQ checked.

    Tests that change the emulator's configuration restore it
    (``devstack.emulator_control().reset()``); tests use fresh uuids for their data.
    """
    with DevStack() as stack:
        yield stack


@pytest.fixture(scope="session")
def devstack_env(devstack: DevStack) -> dict[str, str]:
    """Environment variables that point a service at the session's dev stack."""
    return devstack.env()
