"""Gateway settings, read from the environment with the prefix ``PALETTE_GATEWAY_``.

The connection settings shared by every service (``RABBITMQ_URL``,
``PALETTE_MONGO_URL``, ``PALETTE_S3_ENDPOINT_URL``, ...) come from
``palette.common.settings.CommonSettings`` without the prefix.
"""

from __future__ import annotations

from decimal import Decimal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from palette.common.messages import MAX_RECORDS
from palette.common.settings import CommonSettings

DEV_JWT_SECRET = "plot-palette-dev-only-secret-do-not-use-in-production"  # noqa: S105
"""The default signing secret: for development on one machine only, never in production."""


class GatewaySettings(CommonSettings):
    """Settings of the REST gateway."""

    model_config = SettingsConfigDict(
        env_prefix="PALETTE_GATEWAY_", env_file=".env", extra="ignore", populate_by_name=True
    )

    host: str = Field("127.0.0.1", description="Interface the HTTP server listens on.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port (env PALETTE_GATEWAY_PORT).")
    jwt_secret: SecretStr = Field(
        SecretStr(DEV_JWT_SECRET),
        description=(
            "HS256 secret that signs and verifies bearer tokens. The default is a DEV-ONLY "
            "value: set a long random secret in every real deployment."
        ),
    )
    jwt_issuer: str | None = Field(None, description="Required `iss` claim, when set.")
    jwt_audience: str | None = Field(None, description="Required `aud` claim, when set.")
    jwt_leeway_seconds: int = Field(
        0, ge=0, le=300, description="Clock skew tolerated on `exp`/`nbf`/`iat`."
    )
    max_budget_usd: Decimal = Field(
        Decimal(10_000), gt=0, description="Largest budget one job may ask for, in USD."
    )
    default_partition_size: int | None = Field(
        None,
        ge=1,
        le=MAX_RECORDS,
        description="Partition size of jobs that give none; unset leaves it to the scheduler.",
    )
    max_body_bytes: int = Field(
        100 * 1024 * 1024, ge=1, description="Largest seed file upload, in bytes (413 above)."
    )
    max_json_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1, description="Largest JSON request body, in bytes (413 above)."
    )
    seed_check_records: int = Field(
        1_000,
        ge=1,
        description="How many leading seed records a new job checks against its template.",
    )
    outbox_interval_seconds: float = Field(
        2.0, gt=0, description="How often unpublished SubmitJob commands are retried."
    )
    outbox_grace_seconds: float = Field(
        2.0,
        ge=0,
        description="Age a job must reach before the outbox republishes its SubmitJob.",
    )
    publish_timeout_seconds: float = Field(
        5.0, gt=0, description="How long a request waits for the broker to confirm a publish."
    )
    ready_timeout_seconds: float = Field(
        2.0, gt=0, description="How long /ready waits for each dependency."
    )
