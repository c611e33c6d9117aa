"""Amazon Bedrock's Converse API through botocore, with SDK retries off.

Every attempt the SDK would hide is one the ledger would not see, so the
client makes exactly one HTTP request per call and the generator decides
about retries itself. The generator's calls go through aiobotocore: botocore
(boto3's engine: the same request building, signing, parsing and errors) with
an asyncio HTTP transport, so a call in flight holds no thread. Blocking boto3
calls on a thread pool of the generator's concurrency cost about 1.5 times the
CPU per call of the same calls made one after another, the threads contending
for the GIL (docs/benchmarks.md); the asyncio client costs less than that floor.
``bedrock_client`` is the same configuration as a blocking boto3 client.
"""

from __future__ import annotations

import platform
import socket
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from aiohttp import ClientConnectorError
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError
from urllib3.exceptions import NewConnectionError

from palette.common.prompt_cache import cache_split
from palette.common.steps import Step
from palette.generator import metrics
from palette.generator.cache_points import converse_content
from palette.generator.settings import GeneratorSettings
from palette.generator.structured import StructuredOutput

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient
    from types_aiobotocore_bedrock_runtime import BedrockRuntimeClient as AsyncBedrockClient

# Refused before the model ran: nothing can have been billed.
UNBILLED_CODES = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "ServiceUnavailableException",
        "ServiceQuotaExceededException",
        "ValidationException",
        "AccessDeniedException",
        "ResourceNotFoundException",
        "UnrecognizedClientException",
        "ModelNotReadyException",
    }
)
RETRYABLE_CODES = frozenset(
    {
        "ThrottlingException",
        "TooManyRequestsException",
        "ServiceUnavailableException",
        "InternalServerException",
        "ModelTimeoutException",
        "ModelNotReadyException",
        "ModelErrorException",
        "ServiceQuotaExceededException",
        "RequestTimeout",
        "RequestTimeoutException",
    }
)


USER_AGENT = f"plot-palette-generator Python/{platform.python_version()}"
"""The User-Agent of model calls (botocore appends ``Botocore/<version>``)."""


def client_options(settings: GeneratorSettings) -> dict[str, Any]:
    """One attempt per call, an HTTP pool of at least the concurrency, the call timeout.

    botocore's ``max_attempts`` counts retries (``max_attempts=1`` still sends a
    second request); ``total_max_attempts=1`` is the setting that sends one.
    botocore's client-side parameter validation is off: ``BedrockCaller`` builds
    every request in the one shape Converse takes, so checking it again cost CPU
    on every call (2 % of the generator's in a profile); a value the service
    refuses still comes back as its ``ValidationException``. The User-Agent is
    fixed (``USER_AGENT``, botocore's ``user_agent`` setting): botocore otherwise
    builds its own string from about fifteen components twice per request, to
    put usage telemetry in it (8.5 % of the generator's CPU in a profile).
    """
    return {
        "user_agent": USER_AGENT,
        "parameter_validation": False,
        "retries": {"total_max_attempts": 1, "mode": "standard"},
        "max_pool_connections": max(settings.concurrency, 10),
        "read_timeout": settings.model_call_timeout,
        "connect_timeout": min(settings.model_call_timeout, 10.0),
        "tcp_keepalive": True,
    }


def bedrock_client(settings: GeneratorSettings) -> BedrockRuntimeClient:
    """A blocking boto3 ``bedrock-runtime`` client with the generator's configuration."""
    return boto3.session.Session().client(
        "bedrock-runtime",
        endpoint_url=settings.bedrock_endpoint_url,
        region_name=settings.aws_region,
        config=Config(**client_options(settings)),
    )


@asynccontextmanager
async def open_bedrock(settings: GeneratorSettings) -> AsyncIterator[BedrockCaller]:
    """The generator's model caller, its asyncio client open for the block."""
    async with get_session().create_client(
        "bedrock-runtime",
        endpoint_url=settings.bedrock_endpoint_url,
        region_name=settings.aws_region,
        config=AioConfig(**client_options(settings)),
    ) as client:
        yield BedrockCaller(client)


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One Converse call."""

    model_id: str
    prompt: str
    system: str | None
    max_tokens: int
    temperature: float
    metadata: Mapping[str, str] = field(default_factory=dict)
    cache_split: int | None = None
    """None: no prompt caching; else the cache points' place (``cache_points``)."""
    service_tier: str = "default"
    """Sent as ``serviceTier: {"type": ...}`` unless ``default`` (Bedrock's own default)."""
    output: StructuredOutput | None = None
    """A schema the answer must match (``structured.py``); None: free text."""

    @classmethod
    def of_step(cls, step: Step, prompt: str, system: str | None, **fields: Any) -> ModelRequest:
        """A call of ``step`` with its rendered texts: its model, limits and cache points."""
        return cls(
            model_id=step.model,
            prompt=prompt,
            system=system,
            max_tokens=step.max_tokens,
            temperature=step.temperature,
            cache_split=cache_split(step.prompt, prompt) if step.cache_prompt else None,
            **fields,
        )


@dataclass(frozen=True, slots=True)
class ModelResult:
    """What a call produced and the usage Bedrock reported for it."""

    text: str
    input_tokens: int
    output_tokens: int
    stop_reason: str | None = None
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    tool_input: Any = None
    """The input of the answer's tool use (a forced tool use call), else None."""


class ModelCallError(Exception):
    """A call that returned no usable response (so no usage to account).

    ``maybe_billed`` is True when the model may have run (a timeout, a dropped
    connection, a server error): the provider may bill it though no usage came.
    """

    def __init__(
        self, message: str, *, retryable: bool, code: str = "", maybe_billed: bool = True
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.code = code
        self.maybe_billed = maybe_billed


class ModelCaller(Protocol):
    """What the partition logic needs from a model endpoint."""

    async def converse(self, request: ModelRequest) -> ModelResult:
        """Make one call (no retries)."""
        ...


def classify(exc: Exception) -> ModelCallError:
    """Map a boto3 error to retryable (throttling, 5xx, timeout) or not."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        retryable = code in RETRYABLE_CODES or status == 429 or status >= 500
        message = f"{code or 'error'} (HTTP {status}): {error.get('Message', '')}"
        billed = code not in UNBILLED_CODES and status not in (400, 403, 404, 429, 503)
        return ModelCallError(
            message.strip()[:500], retryable=retryable, code=code, maybe_billed=billed
        )
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        # A request that never connected was not billed; one cut off may have been.
        unsent = isinstance(exc, ConnectTimeoutError) or (
            isinstance(exc, EndpointConnectionError) and never_connected(exc)
        )
        return ModelCallError(
            f"{type(exc).__name__}: {exc}"[:500], retryable=True, maybe_billed=not unsent
        )
    return ModelCallError(f"{type(exc).__name__}: {exc}"[:500], retryable=False, maybe_billed=False)


def never_connected(exc: EndpointConnectionError) -> bool:
    """Whether the error is a failure to connect, not a connection lost mid-request.

    aiobotocore reports both as ``EndpointConnectionError``; the error it wraps
    tells them apart (``ClientConnectorError``, or urllib3's ``NewConnectionError``
    under boto3: connecting failed).
    """
    cause = exc.kwargs.get("error")
    return cause is None or isinstance(
        cause, ClientConnectorError | NewConnectionError | socket.gaierror
    )


def parse_response(response: Mapping[str, Any]) -> ModelResult:
    """Text and usage of a Converse response; usage is required, never estimated."""
    usage = response.get("usage")
    if not isinstance(usage, Mapping) or not all(
        isinstance(usage.get(k), int) for k in ("inputTokens", "outputTokens")
    ):
        raise ModelCallError("the response carries no token usage", retryable=False)
    content = response.get("output", {}).get("message", {}).get("content", [])
    text = "".join(
        block["text"] for block in content if isinstance(block, Mapping) and "text" in block
    )
    tool_uses = [
        block["toolUse"] for block in content if isinstance(block, Mapping) and "toolUse" in block
    ]
    return ModelResult(
        text=text,
        input_tokens=int(usage["inputTokens"]),
        output_tokens=int(usage["outputTokens"]),
        stop_reason=response.get("stopReason"),
        cache_read_tokens=int(usage.get("cacheReadInputTokens") or 0),
        cache_write_tokens=int(usage.get("cacheWriteInputTokens") or 0),
        tool_input=tool_uses[0].get("input") if tool_uses else None,
    )


def converse_body(request: ModelRequest) -> dict[str, Any]:
    """A Converse request's body, but for ``modelId``: also a batch entry's ``modelInput``.

    Messages and system prompt (with cache points), ``inferenceConfig``, the
    structured output's fields (``outputConfig``, or ``toolConfig`` and
    ``toolChoice``), ``requestMetadata`` and ``serviceTier`` when the request has them.
    """
    messages, system = converse_content(request.prompt, request.system, request.cache_split)
    body: dict[str, Any] = {
        "messages": messages,
        "inferenceConfig": {"maxTokens": request.max_tokens, "temperature": request.temperature},
    }
    if system:
        body["system"] = system
    if request.metadata:
        body["requestMetadata"] = dict(request.metadata)
    if request.service_tier != "default":
        body["serviceTier"] = {"type": request.service_tier}
    if request.output is not None:
        body.update(request.output.request_fields())
    return body


class BedrockCaller:
    """Converse calls through an open asyncio client."""

    def __init__(self, client: AsyncBedrockClient) -> None:
        self._client = client

    async def converse(self, request: ModelRequest) -> ModelResult:
        """Make one call; ModelCallError when no usable response came."""
        kwargs = {"modelId": request.model_id, **converse_body(request)}
        started = time.perf_counter()
        try:
            try:
                response = await self._client.converse(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise classify(exc) from exc
            result = parse_response(response)
        except ModelCallError as error:
            metrics.call_failed(request.model_id, error.code, error.retryable)
            raise
        metrics.call_succeeded(
            request.model_id,
            time.perf_counter() - started,
            result.input_tokens,
            result.output_tokens,
        )
        return result
