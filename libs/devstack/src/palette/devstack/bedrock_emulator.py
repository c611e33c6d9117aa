"""An HTTP emulator of the Amazon Bedrock Runtime Converse API.

An unmodified boto3 ``bedrock-runtime`` client with ``endpoint_url=`` pointed at
it works: ``POST /model/{modelId}/converse`` answers in Bedrock's REST-JSON
wire form, errors included (``x-amzn-ErrorType`` header and a ``message``
body, which botocore maps onto ``client.exceptions.ThrottlingException`` and
the others). Every model of the pricing table is served; any other is refused
with a ``ValidationException`` and not billed.

Control API (JSON), beside the model routes:

- ``GET /_emulator/health``: ``{"status": "ok", "models": [...]}``.
- ``GET /_emulator/config``, ``POST /_emulator/config``: read or partly update
  the live configuration (``palette.devstack.faults.EmulatorConfig``);
  ``{"reset": true}`` restores the start configuration.
- ``GET /_emulator/billing[?offset=N][&key=value...]``: billed calls, oldest
  first, each with ``started_at`` (request arrived) and ``at`` (billed, as the
  answer was ready); other query parameters select calls by their
  ``requestMetadata``;
  ``GET /_emulator/billing/summary[?key=value...]``: totals per model;
  ``DELETE /_emulator/billing``: forget them.
- ``GET /_emulator/stats``, ``DELETE /_emulator/stats``: calls per outcome, ``invalid_output``,
  and ``quota_rpm``, ``quota_tpm``, ``quota_daily``: calls throttled by each quota.
- ``GET /_emulator/quotas``: the quotas enforced per model id and each bucket's
  level now (set them through ``config``'s ``quotas``);
  ``GET /_emulator/throttles[?offset=N][&key=value...]``: calls throttled for a
  quota, oldest first (``model_id``, ``at``, ``reason`` rpm/tpm/daily, ``tokens``
  asked, ``request_metadata``); ``DELETE /_emulator/throttles``: forget them.
- ``GET /_emulator/quotas/usage[?model_id=M][&since=T]``: per quota'd model, one
  row per second (``palette.devstack.quota_usage``: requests admitted and
  throttled, tokens reserved and used, the TPM bucket's lowest level);
  ``DELETE /_emulator/quotas/usage``: forget them;
  ``POST /_emulator/quotas/drain`` ``{"model_id": M}``: empty M's buckets now.
- ``GET /_emulator/invocation-log``: where Bedrock-style model invocation logs
  go and how their delivery went (``{"enabled": false}`` when off);
  ``POST /_emulator/invocation-log/flush``: deliver the queued records now.
- ``GET /_emulator/batch``: batch inference jobs created (``submissions``), each with
  its status, counts, tags (``batch_jobs`` serves ``/model-invocation-job``).
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime

from palette.devstack.batch_jobs import BatchJobs
from palette.devstack.billing import BillingLog
from palette.devstack.converse import (
    ConverseCall,
    ConverseRequestError,
    input_tokens,
    max_tokens_of,
    model_from_path,
    parse_request,
)
from palette.devstack.emulator_control import CONTROL_PREFIX, EmulatorControl
from palette.devstack.emulator_errors import (
    ERROR_MESSAGES,
    INVALID_MODEL,
    QUOTA_MESSAGES,
    error_response,
)
from palette.devstack.eventlog import ThrottleLog
from palette.devstack.faults import (
    BILLED_TIMEOUT,
    MODEL_TIMEOUT,
    OK,
    THROTTLING,
    EmulatorConfig,
    FaultInjector,
)
from palette.devstack.httpd import DropConnection, Later, Request, Response, json_response
from palette.devstack.invocation_log import InvocationLogDelivery
from palette.devstack.prompt_cache import PromptCache, cache_minimums, with_cache
from palette.devstack.quota_buckets import QuotaBuckets, Throttle
from palette.devstack.quota_usage import QuotaUsage
from palette.devstack.structured_answers import ask_of, respond


class BedrockEmulator:
    """The request handler: Converse, and the control API."""

    def __init__(
        self,
        config: EmulatorConfig,
        models: Iterable[str],
        billing: BillingLog | None = None,
        invocations: InvocationLogDelivery | None = None,
        throttles: ThrottleLog | None = None,
        burndown: Callable[[str], int] | None = None,
        tiers: Mapping[str, Iterable[str]] | None = None,
        pricing_file: str | None = None,
    ) -> None:
        self.faults = FaultInjector(config)
        self.models = frozenset(models)
        # Models served at each tier other than the default (None: every model at every tier).
        self.tiers = None if tiers is None else {t: frozenset(m) for t, m in tiers.items()}
        self.billing = billing if billing is not None else BillingLog()
        self.invocations = invocations
        self.throttles = throttles if throttles is not None else ThrottleLog()
        self.quotas = QuotaBuckets(config.quotas, burndown, time.monotonic())
        self.usage = QuotaUsage()
        self.stats: Counter[str] = Counter()
        self.quota_stats: Counter[str] = Counter()
        self.prompt_cache = PromptCache(cache_minimums(self.models, pricing_file))
        self.batch: BatchJobs | None = None
        """Batch inference jobs (``palette.devstack.batch_jobs``), when S3 is set up."""

    def __call__(self, request: Request) -> Response | Later:
        """Route one request."""
        path = request.path
        if path.startswith("/model/"):
            parts = path.split("/")
            if len(parts) == 4 and parts[3] == "converse" and request.method == "POST":
                return self.converse(model_from_path(parts[2]), request)
            return error_response(
                "UnknownOperationException", "Unknown operation.", str(uuid.uuid4())
            )
        if path.startswith("/model-invocation-job") and self.batch is not None:
            return self.batch(request)
        if path.startswith(CONTROL_PREFIX):
            return self.control(request.method, path[len(CONTROL_PREFIX) :], request)
        return json_response(404, {"message": "not found"})

    def converse(self, model_id: str, request: Request) -> Response | Later:
        """Answer one Converse call: validate, draw a fault, wait, bill, answer."""
        started = time.monotonic()
        arrived = datetime.now(UTC)
        request_id = str(uuid.uuid4())
        if model_id not in self.models:
            self.stats["ValidationException"] += 1
            return error_response("ValidationException", INVALID_MODEL, request_id)
        try:
            body = request.json()
            call = parse_request(body)
            ask = ask_of(model_id, body)
        except ValueError as exc:  # ConverseRequestError and malformed JSON
            self.stats["ValidationException"] += 1
            message = str(exc) if isinstance(exc, ConverseRequestError) else "Malformed input."
            return error_response("ValidationException", message, request_id)
        if not self.serves_tier(model_id, call.service_tier):
            return self._tier_refused(call.service_tier, request_id)
        second = int(time.time())
        reserved = self._admit(model_id, call, second)
        if isinstance(reserved, Throttle):
            return self._throttled(reserved, call, request_id)
        outcome = self.faults.draw(model_id)
        self.stats[outcome] += 1
        if outcome not in (OK, MODEL_TIMEOUT, BILLED_TIMEOUT):
            self.quotas.release(model_id, reserved, time.monotonic())
            return error_response(outcome, ERROR_MESSAGES[outcome], request_id)
        whole = respond(model_id, call, ask, self.faults, self.stats)

        def finish() -> Response | Later:
            if outcome == MODEL_TIMEOUT:
                self.quotas.release(model_id, reserved, time.monotonic())
                return error_response(outcome, ERROR_MESSAGES[outcome], request_id)
            ttl = self.faults.config.cache_ttl_seconds
            completion = with_cache(whole, self.prompt_cache.use(model_id, call, ttl, started))
            if reserved:  # cache reads do not count toward the quota
                tokens = completion.input_tokens + completion.cache_write
                used = self.quotas.settle(
                    model_id, reserved, tokens, completion.output_tokens, time.monotonic()
                )
                self.usage.used(model_id, second, used)
            entry = self.billing.record(
                request_id,
                model_id,
                completion.input_tokens,
                completion.output_tokens,
                call.request_metadata,
                arrived,
                call.service_tier,
                cache=(completion.cache_read, completion.cache_write),
            )
            if self.invocations is not None:
                self.invocations.add(entry)
            if outcome == BILLED_TIMEOUT:
                return self._billed_timeout(request_id)
            body = completion.body(time.monotonic() - started)
            return json_response(200, body, [("x-amzn-RequestId", request_id)])

        return Later(self._latency(call.service_tier), finish)

    def _latency(self, tier: str) -> float:
        """A call's latency: the configured one, plus ``flex_latency_ms`` at the flex tier."""
        extra = self.faults.config.flex_latency_ms / 1000.0 if tier == "flex" else 0.0
        return self.faults.latency_seconds() + extra

    def _tier_refused(self, tier: str, request_id: str) -> Response:
        self.stats["ValidationException"] += 1
        message = f"The model does not support the {tier} service tier."
        return error_response("ValidationException", message, request_id)

    def serves_tier(self, model_id: str, tier: str) -> bool:
        """Whether a model is served at a service tier (every model at ``default``)."""
        return tier == "default" or self.tiers is None or model_id in self.tiers.get(tier, ())

    def _admit(self, model_id: str, call: ConverseCall, second: int) -> int | Throttle:
        """The tokens a call reserves from its model's quota (0: none enforced), or its throttle."""
        if not self.quotas.enforced(model_id):
            return 0
        reserved = input_tokens(call.messages, call.system) + max_tokens_of(
            call, self.faults.config.default_max_tokens
        )
        throttle = self.quotas.admit(model_id, reserved, now := time.monotonic())
        level = self.quotas.level(model_id, now)
        if throttle is not None:
            self.usage.throttled(model_id, second, level)
            return throttle
        self.usage.admitted(model_id, second, reserved, level)
        return reserved

    def _throttled(self, throttle: Throttle, call: ConverseCall, request_id: str) -> Response:
        self.stats[THROTTLING] += 1
        self.quota_stats[throttle.reason] += 1
        self.throttles.record(
            request_id, throttle.model_id, throttle.reason, throttle.tokens, call.request_metadata
        )
        return error_response(THROTTLING, QUOTA_MESSAGES[throttle.reason], request_id)

    def _billed_timeout(self, request_id: str) -> Response | Later:
        config = self.faults.config
        if config.billed_timeout_mode == "hang":
            return Later(config.hang_ms / 1000.0, _drop)
        if config.billed_timeout_mode == "drop":
            raise DropConnection
        return error_response(MODEL_TIMEOUT, ERROR_MESSAGES[MODEL_TIMEOUT], request_id)

    def control(self, method: str, route: str, request: Request) -> Response:
        """The control API under ``/_emulator/`` (``palette.devstack.emulator_control``)."""
        return EmulatorControl(self)(method, route, request)


def _drop() -> Response:
    raise DropConnection


def main(argv: list[str] | None = None) -> None:
    """Console script ``palette-bedrock-emulator``: run the emulator until SIGTERM/SIGINT."""
    from palette.devstack.emulator_server import run_cli

    run_cli(argv)


if __name__ == "__main__":
    main()
