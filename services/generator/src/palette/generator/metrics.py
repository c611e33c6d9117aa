"""The generator's Prometheus series (served on ``PALETTE_GENERATOR_METRICS_PORT``).

Each generator process counts its own work; sum over processes for the system.
A model call is counted once per HTTP request to the model (the SDK makes no
retries), so ``palette_model_calls_total{outcome="ok"}`` is what Bedrock bills
and its tokens are the billed tokens.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
