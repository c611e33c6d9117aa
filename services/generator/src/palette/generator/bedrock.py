"""Amazon Bedrock's Converse API through boto3, with SDK retries off.

Every attempt the SDK would hide is one the ledger would not see, so the
client makes exactly one HTTP request per call and the generator decides
about retries itself. boto3 is blocking: calls run on a thread pool sized to
the generator's concurrency, and the HTTP pool is at least as large.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from palette.generator import metrics
from palette.generator.settings import GeneratorSettings

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient

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


def bedrock_client(settings: GeneratorSettings) -> BedrockRuntimeClient:
    """A ``bedrock-runtime`` client: one attempt per call, pool >= concurrency.

    botocore's ``max_attempts`` counts retries (``max_attempts=1`` still sends a
    second request); ``total_max_attempts=1`` is the setting that sends one.
    """
    return boto3.session.Session().client(
        "bedrock-runtime",
        endpoint_url=settings.bedrock_endpoint_url,
        region_name=settings.aws_region,
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            max_pool_connections=max(settings.concurrency, 10),
            read_timeout=settings.model_call_timeout,
            connect_timeout=min(settings.model_call_timeout, 10.0),
            tcp_keepalive=True,
        ),
    )


@dataclass(frozen=True, slots=True)
class ModelRequest:
    """One Converse call."""

    model_id: str
    prompt: str
    system: str | None
    max_tokens: int
    temperature: float
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelResult:
    """What a call produced and the usage Bedrock reported for it."""

    text: str
    input_tokens: int
    output_tokens: int
    stop_reason: str | None = None


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
        unsent = isinstance(exc, EndpointConnectionError | ConnectTimeoutError)
        return ModelCallError(
            f"{type(exc).__name__}: {exc}"[:500], retryable=True, maybe_billed=not unsent
        )
    return ModelCallError(f"{type(exc).__name__}: {exc}"[:500], retryable=False, maybe_billed=False)


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
    return ModelResult(
        text=text,
        input_tokens=int(usage["inputTokens"]),
        output_tokens=int(usage["outputTokens"]),
        stop_reason=response.get("stopReason"),
    )


class BedrockCaller:
    """Converse calls on a thread pool."""

    def __init__(self, client: BedrockRuntimeClient, executor: ThreadPoolExecutor) -> None:
        self._client = client
        self._executor = executor

    def _call(self, request: ModelRequest) -> ModelResult:
        kwargs: dict[str, Any] = {
            "modelId": request.model_id,
            "messages": [{"role": "user", "content": [{"text": request.prompt}]}],
            "inferenceConfig": {
                "maxTokens": request.max_tokens,
                "temperature": request.temperature,
            },
        }
        if request.system:
            kwargs["system"] = [{"text": request.system}]
        if request.metadata:
            kwargs["requestMetadata"] = dict(request.metadata)
        started = time.perf_counter()
        try:
            try:
                response = self._client.converse(**kwargs)
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

    async def converse(self, request: ModelRequest) -> ModelResult:
        """Make one call on the pool; ModelCallError when no usable response came."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, request)
