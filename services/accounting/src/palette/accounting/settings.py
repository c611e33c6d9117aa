"""Accounting settings (env prefix ``PALETTE_ACCOUNTING_``)."""

from __future__ import annotations

from pydantic import Field
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

    @property
    def reconcile_wait_seconds(self) -> float:
        """How long after an attempt ended the invocation log is complete for its calls."""
        return self.invocation_log_call_seconds + self.invocation_log_delay_seconds
