"""Scheduler settings (env prefix ``PALETTE_SCHEDULER_``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from palette.common.settings import CommonSettings


class SchedulerSettings(CommonSettings):
    """Settings of the scheduler service."""

    model_config = SettingsConfigDict(
        env_prefix="PALETTE_SCHEDULER_", env_file=".env", extra="ignore", populate_by_name=True
    )

    partition_size: int = Field(
        100,
        ge=1,
        description="Records per partition of every job that names none in `POST /jobs` "
        "(a started job shows the size it got).",
    )
    window: int = Field(4, ge=1, description="Partitions of one job in flight at once.")
    max_attempts: int = Field(3, ge=1, description="Failed attempts before a job fails.")
    prefetch: int = Field(32, ge=1, description="Messages processed at once per queue.")
    pause_seconds: float = Field(
        60.0,
        gt=0,
        description="How long a partition paused for an unavailable model (a model that "
        "throttled every call for PALETTE_GENERATOR_MODEL_UNAVAILABLE_SECONDS) waits before "
        "it is dispatched again.",
    )
    pause_check_seconds: float = Field(
        5.0,
        gt=0,
        description="How often the scheduler looks for paused partitions whose pause is over, "
        "and for exports asked for whose command was not sent.",
    )
    export_resend_seconds: float = Field(
        30.0,
        gt=0,
        description="An export asked for whose ExportJob was not sent this long after (its "
        "publish failed) is sent again.",
    )
