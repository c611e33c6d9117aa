"""Run-time configuration of the Bedrock emulator: latency and injected faults.

Faults are drawn from a seeded generator, one draw per eligible call, so a run
with a given seed and a given order of calls sees the same faults. A ``script``
of outcomes, consumed one per call before the rates are consulted, makes the
next few calls fail (or succeed) exactly as a test needs.

Outcomes:
    ``ThrottlingException`` (429) and ``ServiceUnavailableException`` (503) are
    answered at once and not billed; ``ModelTimeoutException`` (408) is answered
    after the latency and not billed; ``billed_timeout`` runs the model, bills the
    call, then answers 408 (``billed_timeout_mode="error"``), closes the
    connection without an answer (``"drop"``) or holds it for ``hang_ms`` and
    then closes it (``"hang"``).

Quotas (``quotas``: model id to ``QuotaLimits``) are enforced before faults are
drawn (``palette.devstack.quota_buckets``). An update's ``quotas`` changes only the
model ids it names (``null`` for one removes its quota); ``"quotas": null`` removes
every quota.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from palette.devstack.quota_buckets import QuotaLimits

THROTTLING: Final = "ThrottlingException"
UNAVAILABLE: Final = "ServiceUnavailableException"
MODEL_TIMEOUT: Final = "ModelTimeoutException"
BILLED_TIMEOUT: Final = "billed_timeout"
OK: Final = "ok"

Outcome = Literal[
    "ok",
    "ThrottlingException",
    "ServiceUnavailableException",
    "ModelTimeoutException",
    "billed_timeout",
]


class EmulatorConfig(BaseModel):
    """What the emulator does to each call; every field can change at run time."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: float = Field(0.0, ge=0, description="Latency of every model call, in ms.")
    jitter_ms: float = Field(0.0, ge=0, description="Extra latency drawn in [0, jitter_ms).")
    throttle_rate: float = Field(0.0, ge=0, le=1, description="Share of ThrottlingException.")
    unavailable_rate: float = Field(
        0.0, ge=0, le=1, description="Share of ServiceUnavailableException."
    )
    model_timeout_rate: float = Field(
        0.0, ge=0, le=1, description="Share of ModelTimeoutException (not billed)."
    )
    billed_timeout_rate: float = Field(
        0.0, ge=0, le=1, description="Share of calls billed whose answer never arrives."
    )
    billed_timeout_mode: Literal["error", "drop", "hang"] = Field(
        "error", description="What a billed timeout looks like to the caller."
    )
    invalid_output_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of structured answers (outputConfig json_schema, forced tool use) "
        "that do not match their schema; billed like any answer.",
    )
    hang_ms: float = Field(30_000.0, ge=0, description="How long a 'hang' holds the connection.")
    seed: int | None = Field(None, description="Seed of the fault generator (None: random).")
    fault_models: list[str] | None = Field(
        None, description="Models faults apply to (None: every model)."
    )
    script: list[Outcome] = Field(
        default_factory=list, description="Outcomes of the next calls, before the rates."
    )
    default_max_tokens: int = Field(
        512, ge=1, description="maxTokens of a call that does not set it."
    )
    cache_ttl_seconds: float = Field(
        300.0, ge=0, description="How long a cached prompt prefix lives after its last use."
    )
    flex_latency_ms: float = Field(
        0.0, ge=0, description="Extra latency of a call at the flex service tier, in ms."
    )
    batch_delay_ms: float = Field(
        0.0, ge=0, description="How long a batch inference job runs before its output is written."
    )
    batch_error_rate: float = Field(
        0.0, ge=0, le=1, description="Share of a batch job's entries answered with an error."
    )
    batch_min_records: int = Field(
        100, ge=1, description="Fewest entries a batch inference job takes (Bedrock's quota)."
    )
    batch_max_records: int = Field(
        50_000, ge=1, description="Most entries a batch inference job takes (Bedrock's quota)."
    )
    batch_status_errors: int = Field(
        0,
        ge=0,
        description="The next this many GetModelInvocationJob calls answer "
        "InternalServerException (500); counted down as they are answered.",
    )
    quotas: dict[str, QuotaLimits] = Field(
        default_factory=dict,
        description="Quotas enforced per model id, as JSON: "
        '{"<model id>": {"rpm": ..., "tpm": ..., "tpd": ..., "output_burndown": ...}}.',
    )

    @model_validator(mode="after")
    def _rates_fit(self) -> EmulatorConfig:
        total = (
            self.throttle_rate
            + self.unavailable_rate
            + self.model_timeout_rate
            + self.billed_timeout_rate
        )
        if total > 1.0 + 1e-9:
            raise ValueError("the fault rates add up to more than 1")
        return self


def _merge_quotas(current: dict[str, Any], changes: Any) -> dict[str, Any]:
    if changes is None:
        return {}
    if not isinstance(changes, dict):
        raise TypeError("quotas must be a JSON object of model id to limits (or null)")
    merged = {**current, **changes}
    return {model: limits for model, limits in merged.items() if limits is not None}


class FaultInjector:
    """Holds the live configuration and decides each call's outcome."""

    def __init__(self, config: EmulatorConfig) -> None:
        self._initial = config
        self.config = config
        self._script: deque[Outcome] = deque(config.script)
        self._status_errors = config.batch_status_errors
        self._lock = threading.Lock()
        self._reseed(config.seed)

    def _reseed(self, seed: int | None) -> None:
        # Test doubles, not secrets: the standard generator is the right tool.
        self._rng = random.Random(seed)  # noqa: S311
        self._jitter_rng = random.Random(None if seed is None else seed + 1)  # noqa: S311
        self._invalid_rng = random.Random(None if seed is None else seed + 2)  # noqa: S311

    def snapshot(self) -> dict[str, Any]:
        """The configuration as JSON, with what is left of the script."""
        data = self.config.model_dump()
        data["script"] = list(self._script)
        data["batch_status_errors"] = self._status_errors
        return data

    def update(self, patch: dict[str, Any]) -> EmulatorConfig:
        """Apply a partial update (``{"reset": true}`` restores the start configuration).

        Raises:
            pydantic.ValidationError: the result is not a valid configuration.
        """
        patch = dict(patch)
        reset = bool(patch.pop("reset", False))
        current = self._initial.model_dump() if reset else self.snapshot()
        if "quotas" in patch:
            patch["quotas"] = _merge_quotas(current["quotas"], patch["quotas"])
        config = EmulatorConfig.model_validate({**current, **patch})
        self.config = config
        self._script = deque(config.script)
        with self._lock:
            self._status_errors = config.batch_status_errors
        if reset or "seed" in patch:
            self._reseed(config.seed)
        return config

    def draw(self, model_id: str) -> Outcome:
        """The outcome of the next call to ``model_id``."""
        config = self.config
        if config.fault_models is not None and model_id not in config.fault_models:
            return OK
        if self._script:
            return self._script.popleft()
        if not (
            config.throttle_rate
            or config.unavailable_rate
            or config.model_timeout_rate
            or config.billed_timeout_rate
        ):
            return OK
        point = self._rng.random()
        rates: tuple[tuple[Outcome, float], ...] = (
            (THROTTLING, config.throttle_rate),
            (UNAVAILABLE, config.unavailable_rate),
            (MODEL_TIMEOUT, config.model_timeout_rate),
            (BILLED_TIMEOUT, config.billed_timeout_rate),
        )
        for outcome, rate in rates:
            if point < rate:
                return outcome
            point -= rate
        return OK

    def status_error(self) -> bool:
        """Whether the next GetModelInvocationJob fails (``batch_status_errors`` counts down)."""
        with self._lock:
            if self._status_errors <= 0:
                return False
            self._status_errors -= 1
            return True

    def draw_invalid(self, model_id: str) -> bool:
        """Whether the next structured answer of ``model_id`` misses its schema."""
        config = self.config
        if not config.invalid_output_rate or (
            config.fault_models is not None and model_id not in config.fault_models
        ):
            return False
        return self._invalid_rng.random() < config.invalid_output_rate

    def latency_seconds(self) -> float:
        """Latency of the next call, in seconds."""
        config = self.config
        jitter = self._jitter_rng.random() * config.jitter_ms if config.jitter_ms else 0.0
        return (config.latency_ms + jitter) / 1000.0
