"""The Bedrock client setup, error classification and response parsing."""

from __future__ import annotations

from typing import Any

import aiohttp
import botocore
import pytest
from aiohttp.client_reqrep import ConnectionKey
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from palette.generator.bedrock import (
    USER_AGENT,
    ModelCallError,
    bedrock_client,
    classify,
    open_bedrock,
    parse_response,
)
from palette.generator.settings import GeneratorSettings
from palette.generator.stops import StopRegistry

pytestmark = pytest.mark.unit


def client_error(code: str, status: int) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": "boom"},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "Converse")


class TestClassify:
    @pytest.mark.parametrize(
        ("code", "status", "retryable", "maybe_billed"),
        [
            ("ThrottlingException", 429, True, False),
            ("ServiceUnavailableException", 503, True, False),
            ("InternalServerException", 500, True, True),
            ("ModelTimeoutException", 408, True, True),
            ("ValidationException", 400, False, False),
            ("AccessDeniedException", 403, False, False),
            ("ResourceNotFoundException", 404, False, False),
        ],
    )
    def test_client_errors(
        self, code: str, status: int, retryable: bool, maybe_billed: bool
    ) -> None:
        error = classify(client_error(code, status))
        assert (error.retryable, error.maybe_billed, error.code) == (retryable, maybe_billed, code)
        assert code in str(error)

    def test_a_read_timeout_is_retryable_and_may_be_billed(self) -> None:
        error = classify(ReadTimeoutError(endpoint_url="http://x"))
        assert error.retryable
        assert error.maybe_billed

    def test_a_dropped_connection_may_be_billed(self) -> None:
        assert classify(ConnectionClosedError(endpoint_url="http://x")).maybe_billed

    def test_a_refused_connection_was_not_billed(self) -> None:
        error = classify(EndpointConnectionError(endpoint_url="http://x"))
        assert error.retryable
        assert not error.maybe_billed

    def test_a_failed_connect_under_aiohttp_was_not_billed(self) -> None:
        refused = aiohttp.ClientConnectorError(
            ConnectionKey("127.0.0.1", 1, False, True, None, None, None),
            OSError(111, "Connection refused"),
        )
        error = classify(EndpointConnectionError(endpoint_url="http://x", error=refused))
        assert error.retryable
        assert not error.maybe_billed

    def test_a_connection_reset_mid_request_may_be_billed(self) -> None:
        # aiobotocore reports a reset after the request went out as an
        # EndpointConnectionError too; the request may have reached the model.
        reset = aiohttp.ClientOSError(104, "Connection reset by peer")
        error = classify(EndpointConnectionError(endpoint_url="http://x", error=reset))
        assert error.retryable
        assert error.maybe_billed

    def test_missing_credentials_are_not_retried(self) -> None:
        error = classify(NoCredentialsError())
        assert not error.retryable
        assert not error.maybe_billed


class TestParseResponse:
    def test_reads_text_and_usage(self) -> None:
        result = parse_response(
            {
                "output": {"message": {"content": [{"text": "hel"}, {"text": "lo"}]}},
                "usage": {"inputTokens": 3, "outputTokens": 4, "totalTokens": 7},
                "stopReason": "end_turn",
            }
        )
        assert (result.text, result.input_tokens, result.output_tokens) == ("hello", 3, 4)

    def test_a_response_without_usage_is_an_error(self) -> None:
        with pytest.raises(ModelCallError, match="usage"):
            parse_response({"output": {"message": {"content": [{"text": "x"}]}}})


class _Captured(Exception):
    """Ends a call once its request is built, before anything is sent."""


class TestClient:
    def test_sdk_retries_are_off_and_the_pool_fits_the_concurrency(self) -> None:
        settings = GeneratorSettings(
            concurrency=48,
            bedrock_endpoint_url="http://127.0.0.1:1",
            model_call_timeout=7,
        )
        client = bedrock_client(settings)
        config: Any = client.meta.config
        assert config.retries["total_max_attempts"] == 1  # one HTTP request per call
        assert config.max_pool_connections >= 48
        assert config.read_timeout == 7
        assert client.meta.endpoint_url == "http://127.0.0.1:1"

    def test_a_call_sends_the_fixed_user_agent(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        client: Any = bedrock_client(GeneratorSettings(bedrock_endpoint_url="http://127.0.0.1:1"))
        sent: dict[str, str] = {}

        def capture(request: Any, **_: Any) -> None:
            sent["user_agent"] = request.headers["User-Agent"].decode()
            raise _Captured

        client.meta.events.register("before-send.bedrock-runtime.Converse", capture)
        with pytest.raises(_Captured):
            client.converse(modelId="m", messages=[{"role": "user", "content": [{"text": "hi"}]}])
        assert sent["user_agent"] == f"{USER_AGENT} Botocore/{botocore.__version__}"

    async def test_the_asyncio_client_has_the_same_configuration(self) -> None:
        settings = GeneratorSettings(
            concurrency=48,
            bedrock_endpoint_url="http://127.0.0.1:1",
            model_call_timeout=7,
        )
        async with open_bedrock(settings) as caller:
            client: Any = caller._client
            config: Any = client.meta.config
            assert config.retries["total_max_attempts"] == 1
            assert config.max_pool_connections >= 48
            assert config.read_timeout == 7
            assert config.user_agent.startswith(USER_AGENT)
            assert client.meta.endpoint_url == "http://127.0.0.1:1"


class TestSettings:
    def test_env_names(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("PALETTE_GENERATOR_CONCURRENCY", "5")
        monkeypatch.setenv("PALETTE_GENERATOR_PREFETCH", "3")
        monkeypatch.setenv("PALETTE_BEDROCK_ENDPOINT_URL", "http://emulator:9")
        monkeypatch.setenv("PALETTE_GENERATOR_MAX_CALL_ATTEMPTS", "6")
        settings = GeneratorSettings()
        assert (settings.concurrency, settings.prefetch, settings.max_call_attempts) == (5, 3, 6)
        assert settings.bedrock_endpoint_url == "http://emulator:9"

    def test_defaults(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in ("CONCURRENCY", "PREFETCH", "MAX_CALL_ATTEMPTS", "RENDER_SECONDS"):
            monkeypatch.delenv(f"PALETTE_GENERATOR_{name}", raising=False)
        settings = GeneratorSettings(_env_file=None)
        assert (settings.concurrency, settings.prefetch, settings.max_call_attempts) == (32, 2, 4)
        assert settings.render_seconds == 1.0


class TestStopRegistry:
    async def test_sleep_wakes_when_the_job_stops(self) -> None:
        import asyncio

        from palette.common.messages import JobStatus

        stops = StopRegistry()
        loop = asyncio.get_running_loop()
        loop.call_later(0.05, stops.stop, "j", JobStatus.CANCELLED)
        started = loop.time()
        assert await stops.sleep("j", 5.0)
        assert loop.time() - started < 1.0

    def test_is_bounded(self) -> None:
        from palette.common.messages import JobStatus

        stops = StopRegistry(capacity=2)
        for job in ("a", "b", "c"):
            stops.stop(job, JobStatus.CANCELLED)
        assert len(stops) == 2
        assert not stops.is_stopped("a")
        assert stops.is_stopped("c")
