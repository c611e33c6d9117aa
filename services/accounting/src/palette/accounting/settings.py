"""Accounting settings (env prefix ``PALETTE_ACCOUNTING_``)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from palette.common.settings import CommonSettings


class AccountingSettings(CommonSettings):
    """Settings of the accounting service."""

    model_config = SettingsConfigDict(
        env_prefix="PALETTE_ACCOUNTING_", env_file=".env", extra="ignore", populate_by_name=True
    )

    prefetch: int = Field(32, ge=1, description="Messages processed at once per queue.")
    invocation_log_bucket: str | None = Field(
        None,
        description="S3 bucket that receives Bedrock's model invocation logs. Calls whose "
        "answer never came, and the leases of lost generators, are settled from it. Unset: "
        "no log; such calls settle at their worst case and such leases at their whole amount.",
    )
    invocation_log_prefix: str = Field(
        "", description="Key prefix configured for the invocation logs (before AWSLogs/)."
    )
    invocation_log_delay_seconds: float = Field(
        900.0,
        ge=0,
        description="Bound on how long after a call is billed its record is in the bucket.",
    )
    invocation_log_call_seconds: float = Field(
        60.0,
        ge=0,
        description="The longest a model call runs at the provider after it was sent (it is "
        "billed and logged by then); at least the generators' model call timeout.",
    )
    preview_hold_seconds: float = Field(
        600.0,
        ge=0,
        description="How long after a preview's deadline its reservation is held for the "
        "generator's report of what it spent; then, unreported, it is released (no generator "
        "ran it). At least the generators' model call timeout times a template's steps.",
    )
    preview_sweep_seconds: float = Field(
        5.0, gt=0, description="How often reservations past their hold are released."
    )
    reconcile_interval_seconds: float = Field(
        1.0, gt=0, description="How often held leases are checked against the invocation log."
    )

    webhook_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="The longest one webhook attempt may take (resolving, connecting, sending "
        "and the response's headers); a slower receiver's attempt counts as failed.",
    )
    webhook_retry_initial_seconds: float = Field(
        5.0,
        gt=0,
        description="Wait before retrying a failed webhook delivery the first time; each later "
        "wait doubles (up to `webhook_retry_max_interval_seconds`), with random jitter of up "
        "to half the wait.",
    )
    webhook_retry_max_interval_seconds: float = Field(
        3600.0, gt=0, description="The longest wait between two attempts of a delivery."
    )
    webhook_retry_for_seconds: float = Field(
        86400.0,
        gt=0,
        description="How long after its event (or a re-send) a delivery is retried; then it "
        "is `failed` (it can still be re-sent).",
    )
    webhook_poll_seconds: float = Field(
        1.0,
        gt=0,
        description="How often due webhook deliveries are looked for (a new event of this "
        "process is sent at once).",
    )
    webhook_claim_seconds: float = Field(
        60.0,
        gt=0,
        description="How long a process holds a delivery it is attempting; one whose process "
        "died is attempted again after this. More than `webhook_timeout_seconds`.",
    )
    webhook_concurrency: int = Field(
        16, ge=1, description="Webhook attempts in flight at once per accounting process."
    )
    webhook_delivery_retention_days: int = Field(
        30, ge=1, description="How long a delivery and its attempts are kept (a TTL index)."
    )

    @model_validator(mode="after")
    def _webhook_times_fit(self) -> Self:
        if self.webhook_claim_seconds <= self.webhook_timeout_seconds:
            raise ValueError(
                "webhook_claim_seconds must be more than webhook_timeout_seconds, or a slow "
                "attempt's delivery would be taken by another process while it runs"
            )
        if self.webhook_delivery_retention_days * 86400 <= self.webhook_retry_for_seconds:
            raise ValueError(
                "webhook_delivery_retention_days must be longer than webhook_retry_for_seconds, "
                "or deliveries would be dropped while they are still retried"
            )
        return self

    @property
    def reconcile_wait_seconds(self) -> float:
        """How long after an attempt ended the invocation log is complete for its calls."""
        return self.invocation_log_call_seconds + self.invocation_log_delay_seconds
