"""Settings shared by every service, read from the environment (and ``.env``).

Each service subclasses ``CommonSettings`` with its own prefix, e.g.
``PALETTE_SCHEDULER_``; the shared fields below are read without a prefix
override so that one ``.env`` configures the connections of every service,
except ``metrics_port``, which is per process and so per service
(``PALETTE_SCHEDULER_METRICS_PORT``, ...).

Each setting has one owner. A variable of a setting that moved to another
service is refused (``RETIRED_VARIABLES``), never silently ignored.
"""

from __future__ import annotations

import os
from typing import Self

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

RETIRED_VARIABLES = {
    "PALETTE_GATEWAY_DEFAULT_PARTITION_SIZE": "PALETTE_SCHEDULER_PARTITION_SIZE on the scheduler",
    "PALETTE_SCHEDULER_PART_SIZE": "PALETTE_GENERATOR_PART_SIZE on the generators",
}
"""Variables no service reads any more, and what to set instead."""


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class CommonSettings(BaseSettings):
    """Connections and defaults every service needs."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    rabbitmq_url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/",
        validation_alias=_env("RABBITMQ_URL"),
        description="AMQP URL of the RabbitMQ broker.",
    )
    mongo_url: str = Field(
        "mongodb://127.0.0.1:27017/?directConnection=true",
        validation_alias=_env("PALETTE_MONGO_URL"),
        description="MongoDB connection string (SecantusDB on one machine).",
    )
    mongo_db: str = Field(
        "palette", validation_alias=_env("PALETTE_MONGO_DB"), description="Database name."
    )
    s3_endpoint_url: str | None = Field(
        None,
        validation_alias=_env("PALETTE_S3_ENDPOINT_URL"),
        description="S3 endpoint; unset means AWS's own.",
    )
    s3_bucket: str = Field(
        "plot-palette", validation_alias=_env("PALETTE_S3_BUCKET"), description="Bucket name."
    )
    bedrock_endpoint_url: str | None = Field(
        None,
        validation_alias=_env("PALETTE_BEDROCK_ENDPOINT_URL"),
        description="Bedrock endpoint (the emulator's URL); unset means AWS's own. The "
        "generators call models there; accounting follows, stops and counts the batch "
        "inference jobs of a lost generator's lease there.",
    )
    aws_region: str = Field(
        "us-east-1", validation_alias=_env("AWS_REGION"), description="AWS region."
    )
    pricing_file: str | None = Field(
        None,
        validation_alias=_env("PALETTE_PRICING_FILE"),
        description="A pricing JSON file that replaces the shipped table.",
    )
    structured_output_file: str | None = Field(
        None,
        validation_alias=_env("PALETTE_STRUCTURED_OUTPUT_FILE"),
        description="A JSON file (the shape of the shipped structured_output.json) that "
        "replaces the shipped table of how each model answers a schema.",
    )
    log_level: str = Field(
        "INFO", validation_alias=_env("PALETTE_LOG_LEVEL"), description="Log level."
    )
    log_json: bool | None = Field(
        None,
        validation_alias=_env("PALETTE_LOG_JSON"),
        description="JSON log lines; unset means JSON unless stderr is a terminal.",
    )
    metrics_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="Port of this process's Prometheus endpoint (`/metrics`, all interfaces); "
        "0 serves none. Every process needs its own: on one machine, give each a different one.",
    )
    otlp_endpoint: str | None = Field(
        None,
        validation_alias=_env("OTEL_EXPORTER_OTLP_ENDPOINT"),
        description="OTLP/HTTP collector base URL (e.g. http://collector:4318): traces are "
        "exported there; unset or empty means no tracing.",
    )

    webhook_allowed_hosts: list[str] = Field(
        default_factory=list,
        validation_alias=_env("PALETTE_WEBHOOK_ALLOWED_HOSTS"),
        description="Hosts a webhook may reach without the production checks (JSON list, e.g. "
        '`["localhost"]`): http allowed, no address checks. For development and tests only; '
        "every other webhook URL must be https and its host must resolve to public addresses "
        "only. Read by the gateway (when a webhook is created) and accounting (when it sends).",
    )

    @field_validator("otlp_endpoint")
    @classmethod
    def _blank_is_unset(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @model_validator(mode="after")
    def _no_retired_variables(self) -> Self:
        retired = [name for name in RETIRED_VARIABLES if name in os.environ]
        if retired:
            raise ValueError(
                "; ".join(
                    f"{name} is no longer read: set {RETIRED_VARIABLES[name]}" for name in retired
                )
            )
        return self
