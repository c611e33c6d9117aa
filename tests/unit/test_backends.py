"""The test backend choice (tests/backends.py) and the environment each gives, without Docker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from palette.common.settings import CommonSettings
from palette.devstack.stack import DevStack
from palette.generator.settings import GeneratorSettings
from tests import backends
from tests.backends import (
    BACKEND_ENV,
    Backend,
    BackendUnavailableError,
    ContainerEndpoints,
    ContainerStack,
    StoreContainers,
    container_env,
    open_backend,
    selected_backend,
)

pytestmark = pytest.mark.unit

ENDPOINTS = ContainerEndpoints(
    rabbitmq_url="amqp://guest:guest@127.0.0.1:41001/",
    mongo_url="mongodb://127.0.0.1:41002/?directConnection=true",
    s3_endpoint_url="http://127.0.0.1:41003",
)


class FakeContainers(StoreContainers):
    """Containers that were never started, at fixed addresses."""

    def __init__(self) -> None:
        super().__init__(host_ports={"rabbitmq": 41001, "mongodb": 41002, "minio": 41003})
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


class TestSelectedBackend:
    def test_defaults_to_the_dev_stack_when_unset_or_empty(self) -> None:
        assert selected_backend({}) == "devstack"
        assert selected_backend({BACKEND_ENV: "  "}) == "devstack"

    def test_reads_containers_whatever_the_case_and_spaces(self) -> None:
        assert selected_backend({BACKEND_ENV: " Containers\n"}) == "containers"
        assert selected_backend({BACKEND_ENV: "devstack"}) == "devstack"

    def test_refuses_an_unknown_backend_naming_the_choices(self) -> None:
        with pytest.raises(BackendUnavailableError, match="devstack, containers"):
            selected_backend({BACKEND_ENV: "docker"})


class TestOpenBackend:
    def test_dev_stack_backend_uses_the_configured_broker_and_a_devstack(self) -> None:
        with open_backend({}) as backend:
            assert backend.name == "devstack"
            assert backend.rabbitmq_url is None
            stack = backend.stack(rabbitmq_url="amqp://x@h:1/", check_rabbitmq=False)
        assert type(stack) is DevStack
        assert stack.rabbitmq_url == "amqp://x@h:1/"

    def test_containers_without_docker_fail_with_the_reason_and_the_way_out(self) -> None:
        started: list[bool] = []

        def start() -> StoreContainers:
            started.append(True)
            raise AssertionError("must not start containers without Docker")

        with (
            pytest.raises(BackendUnavailableError) as info,
            open_backend(
                {BACKEND_ENV: "containers"},
                docker_check=lambda: (False, "ConnectionError: no socket"),
                start_containers=start,
            ),
        ):
            pass
        message = str(info.value)
        assert "no Docker engine answers" in message
        assert "ConnectionError: no socket" in message
        assert f"unset {BACKEND_ENV}" in message
        assert started == []

    def test_containers_backend_hands_out_the_containers_and_stops_them(self) -> None:
        fake = FakeContainers()
        with open_backend(
            {BACKEND_ENV: "containers"},
            docker_check=lambda: (True, "ok"),
            start_containers=lambda: fake,
        ) as backend:
            assert backend.name == "containers"
            assert backend.rabbitmq_url == ENDPOINTS.rabbitmq_url
            assert isinstance(backend.stack(), ContainerStack)
            assert not fake.stopped
        assert fake.stopped

    def test_docker_status_reports_an_engine_that_does_not_answer(self, monkeypatch: Any) -> None:
        monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
        ok, reason = backends.docker_status(timeout=1)
        assert ok is False
        assert reason


class TestContainerEnvironment:
    def test_points_broker_database_and_s3_at_the_containers_and_keeps_the_emulator(
        self, tmp_path: Path
    ) -> None:
        base = DevStack(tmp_path, rabbitmq_url="amqp://guest:guest@127.0.0.1:5672/").env()
        env = container_env(ENDPOINTS, base)
        assert env["RABBITMQ_URL"] == ENDPOINTS.rabbitmq_url
        assert env["PALETTE_MONGO_URL"] == ENDPOINTS.mongo_url
        assert env["PALETTE_S3_ENDPOINT_URL"] == ENDPOINTS.s3_endpoint_url
        assert env["AWS_ACCESS_KEY_ID"] == backends.MINIO_USER
        assert len(env["AWS_SECRET_ACCESS_KEY"]) >= 8, "MinIO's minimum"
        assert env["PALETTE_BEDROCK_ENDPOINT_URL"] == base["PALETTE_BEDROCK_ENDPOINT_URL"]

    def test_services_read_the_containers_from_that_environment(self) -> None:
        env = container_env(ENDPOINTS, {"PALETTE_BEDROCK_ENDPOINT_URL": "http://127.0.0.1:9"})
        common = CommonSettings.model_validate(env)
        generator = GeneratorSettings.model_validate(env)
        assert common.rabbitmq_url == ENDPOINTS.rabbitmq_url
        assert common.mongo_url == ENDPOINTS.mongo_url
        assert common.s3_endpoint_url == ENDPOINTS.s3_endpoint_url
        assert generator.bedrock_endpoint_url == "http://127.0.0.1:9"

    def test_container_stack_gives_the_containers_addresses_before_anything_starts(
        self, tmp_path: Path
    ) -> None:
        stack = ContainerStack(FakeContainers(), state_dir=tmp_path)
        assert stack.rabbitmq_url == ENDPOINTS.rabbitmq_url
        assert stack.mongo_url == ENDPOINTS.mongo_url
        assert stack.s3_endpoint_url == ENDPOINTS.s3_endpoint_url
        assert stack.env()["PALETTE_MONGO_URL"] == ENDPOINTS.mongo_url
        assert "directConnection=true" in stack.mongo_url

    def test_backend_without_containers_has_no_broker_of_its_own(self) -> None:
        assert Backend("devstack").rabbitmq_url is None
