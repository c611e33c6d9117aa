"""The generator's Prometheus series (served on ``PALETTE_GENERATOR_METRICS_PORT``).

Each generator process counts its own work; sum over processes for the system.
A model call is counted once per HTTP request to the model (the SDK makes no
retries), so ``palette_model_calls_total{outcome="ok"}`` is what Bedrock bills
and its tokens are the billed tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge, Histogram

if TYPE_CHECKING:
    from palette.generator.quota_pacer import ModelPacer

THROTTLE_CODES = frozenset(
    {"ThrottlingException", "TooManyRequestsException", "ServiceQuotaExceededException"}
)

RECORDS_GENERATED = Counter(
    "palette_records_generated", "Records this process generated and wrote to S3 parts."
)
RECORDS_EXPORTED = Counter(
    "palette_records_exported", "Records this process wrote to jobs' final exports."
)
PARTITIONS_IN_FLIGHT = Gauge(
    "palette_partitions_in_flight", "Partition attempts this process is working on now."
)
MODEL_CALLS = Counter(
    "palette_model_calls",
    "Model calls (one HTTP request each), by model and outcome: ok, throttled, "
    "retryable_error (5xx, timeout, connection) or error.",
    ["model", "outcome"],
)
MODEL_LATENCY = Histogram(
    "palette_model_call_duration_seconds",
    "Time from request to parsed response of successful model calls, by model.",
    ["model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0),
)
INPUT_TOKENS = Counter(
    "palette_model_input_tokens", "Input tokens of successful model calls, by model.", ["model"]
)
OUTPUT_TOKENS = Counter(
    "palette_model_output_tokens", "Output tokens of successful model calls, by model.", ["model"]
)
INVALID_OUTPUTS = Counter(
    "palette_model_invalid_outputs",
    "Answers of structured steps (output_schema, judge) their schema did not validate "
    "(billed, then asked for again), by model.",
    ["model"],
)

QUOTA_WAIT = Counter(
    "palette_quota_wait_seconds",
    "Seconds model calls waited for their model's quota (the local bucket), by model.",
    ["model"],
)
QUOTA_SHARE = Gauge(
    "palette_quota_share_tokens_per_minute",
    "This process's fair share of the model's tokens-per-minute quota (known quotas).",
    ["model"],
)
QUOTA_RATE = Gauge(
    "palette_quota_rate_tokens_per_minute",
    "Tokens per minute this process lets the model's calls use now: its share times the "
    "throttle factor, or the rate found by throttles for an unknown quota (-1: unlimited).",
    ["model"],
)
QUOTA_USED = Gauge(
    "palette_quota_used_tokens_per_minute",
    "Quota tokens (input + output x burndown) the model's answered calls used lately.",
    ["model"],
)
QUOTA_WAITING = Gauge(
    "palette_quota_waiting_calls", "Model calls waiting for the model's quota now.", ["model"]
)


def quota_state(model: str, pacer: ModelPacer) -> None:
    """Set the quota gauges of a model from its pacer."""
    QUOTA_SHARE.labels(model).set(pacer.share if pacer.share is not None else 0.0)
    QUOTA_RATE.labels(model).set(pacer.rate if pacer.rate is not None else -1.0)
    QUOTA_USED.labels(model).set(pacer.used_per_minute())
    QUOTA_WAITING.labels(model).set(pacer.waiting)


def failure_outcome(code: str, retryable: bool) -> str:
    """The ``outcome`` label of a call that returned no usable response."""
    if code in THROTTLE_CODES:
        return "throttled"
    return "retryable_error" if retryable else "error"


def call_succeeded(model: str, seconds: float, input_tokens: int, output_tokens: int) -> None:
    """Count a successful call: its latency and tokens."""
    MODEL_CALLS.labels(model, "ok").inc()
    MODEL_LATENCY.labels(model).observe(seconds)
    INPUT_TOKENS.labels(model).inc(input_tokens)
    OUTPUT_TOKENS.labels(model).inc(output_tokens)


def call_failed(model: str, code: str, retryable: bool) -> None:
    """Count a call that returned no usable response."""
    MODEL_CALLS.labels(model, failure_outcome(code, retryable)).inc()
