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
