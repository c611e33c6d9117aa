"""Running the Bedrock emulator: settings, a background-thread server, the CLI.

Settings come from ``PALETTE_EMULATOR_*`` environment variables (every field of
``EmulatorConfig`` plus ``HOST``, ``PORT``, ``BILLING_FILE``, ``THROTTLE_FILE``,
``QUOTA_TABLE``, ``QUOTA_REGION`` and the ``INVOCATION_LOG_*`` and
``S3_ENDPOINT_URL`` of the model invocation log), the pricing table from
``PALETTE_PRICING_FILE`` and the quota table from ``PALETTE_QUOTAS_FILE``;
command-line flags override both. ``QUOTAS`` (``--quotas``) is JSON.
The invocation log (``palette.devstack.invocation_log``) is delivered only when
``INVOCATION_LOG_BUCKET`` is set; S3 credentials come from the usual AWS variables.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from palette.common.pricing import load_pricing
from palette.common.quotas import load_quotas
from palette.common.service_tiers import rated_table
from palette.devstack.batch_jobs import BatchJobs
from palette.devstack.bedrock_emulator import BedrockEmulator
from palette.devstack.billing import BillingLog
from palette.devstack.eventlog import ThrottleLog
from palette.devstack.faults import EmulatorConfig
from palette.devstack.httpd import HttpServer
from palette.devstack.invocation_log import InvocationLogDelivery

log = logging.getLogger("palette.devstack.emulator")


class EmulatorSettings(EmulatorConfig, BaseSettings):
    """Start-up settings of the emulator (env prefix ``PALETTE_EMULATOR_``)."""

    model_config = SettingsConfigDict(env_prefix="PALETTE_EMULATOR_", extra="ignore")

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8600, ge=0, le=65535, description="Port to listen on (0: a free one).")
    billing_file: str | None = Field(None, description="Also append billed calls to this JSONL.")
    pricing_file: str | None = Field(
        None,
        validation_alias=AliasChoices("PALETTE_PRICING_FILE", "pricing_file"),
        description="Pricing table whose models are served (default: the shipped one).",
    )
    throttle_file: str | None = Field(
        None, description="Also append calls throttled for a quota to this JSONL."
    )
    quotas_file: str | None = Field(
        None,
        validation_alias=AliasChoices("PALETTE_QUOTAS_FILE", "quotas_file"),
        description="Quota table: output burndown per model, and the quotas --quota-table "
        "enforces (default: the shipped one).",
    )
    quota_region: str = Field("us-east-1", description="Region of the quota table to read.")
    quota_table: bool = Field(
        False,
        description="Enforce the quota table's RPM and TPM for every model it lists "
        "(--quotas overrides per model).",
    )
    invocation_log_bucket: str | None = Field(
        None, description="Deliver Bedrock-style model invocation logs to this S3 bucket."
    )
    invocation_log_prefix: str = Field(
        "bedrock-invocation-logs", description="Key prefix of the invocation logs."
    )
    invocation_log_flush_ms: float = Field(
        250.0, gt=0, description="How often queued invocation log records are delivered, in ms."
    )
    invocation_log_account: str = Field(
        "000000000000", description="Account id in the invocation logs' keys and records."
    )
    invocation_log_region: str = Field(
        "us-east-1", description="Region in the invocation logs' keys and records."
    )
    s3_endpoint_url: str | None = Field(
        None,
        description="S3 endpoint of the invocation logs and of batch jobs' input and output "
        "(None: AWS's own).",
    )

    def emulator_config(self) -> EmulatorConfig:
        """The run-time part of the settings (with the quota table's, if enforced)."""
        config = self.model_dump(include=set(EmulatorConfig.model_fields))
        if self.quota_table:
            table = load_quotas(self.quotas_file)
            listed = {
                model: {"rpm": entry.rpm, "tpm": entry.tpm, "tpd": entry.tokens_per_day}
                for model in table.models(self.quota_region)
                if (entry := table.quota(model, self.quota_region)) is not None
            }
            config["quotas"] = {**listed, **config["quotas"]}
        return EmulatorConfig.model_validate(config)

    def output_burndown(self, model_id: str) -> int:
        """The quota table's output burndown of a model id."""
        return load_quotas(self.quotas_file).output_burndown(model_id, self.quota_region)


def build_emulator(settings: EmulatorSettings) -> BedrockEmulator:
    """The handler for these settings (models from the pricing table).

    Its invocation log delivery, if any, is not started yet (``start_emulator``).
    """
    pricing = load_pricing(settings.pricing_file)
    models = pricing.models
    invocations = None
    if settings.invocation_log_bucket:
        invocations = InvocationLogDelivery(
            settings.invocation_log_bucket,
            settings.invocation_log_prefix,
            account=settings.invocation_log_account,
            region=settings.invocation_log_region,
            flush_seconds=settings.invocation_log_flush_ms / 1000.0,
            s3_endpoint_url=settings.s3_endpoint_url,
        )
    emulator = BedrockEmulator(
        settings.emulator_config(),
        models,
        BillingLog(settings.billing_file),
        invocations,
        ThrottleLog(settings.throttle_file),
        settings.output_burndown,
        {tier: rated_table(pricing, tier).models for tier in ("flex", "priority")},
        settings.pricing_file,
    )
    emulator.batch = BatchJobs(
        emulator.faults,
        emulator.stats,
        frozenset(rated_table(pricing, "batch").models),
        emulator.billing,
        settings.s3_endpoint_url,
        settings.invocation_log_region,
        settings.invocation_log_account,
    )
    return emulator


def close_emulator(emulator: BedrockEmulator) -> None:
    """Deliver what is left of the invocation log and close the billing and throttle files."""
    if emulator.invocations is not None:
        emulator.invocations.close()
    emulator.billing.close()
    emulator.throttles.close()


class EmulatorServer:
    """The emulator on its own event loop in a background thread (for in-process use).

    Example:
        with EmulatorServer(EmulatorSettings(port=0)) as server:
            client = boto3.client("bedrock-runtime", endpoint_url=server.url)
    """

    def __init__(self, settings: EmulatorSettings | None = None) -> None:
        self.settings = settings or EmulatorSettings(port=0)
        self.emulator = build_emulator(self.settings)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._http = HttpServer(self.emulator)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name="emulator")

    @property
    def url(self) -> str:
        """Base URL (the ``endpoint_url`` of a bedrock-runtime client)."""
        return f"http://{self.settings.host}:{self.port}"

    def start(self) -> EmulatorServer:
        """Start serving; returns once the port is open."""
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            self._http.start(self.settings.host, self.settings.port), self._loop
        )
        self.port = future.result(timeout=10)
        if self.emulator.invocations is not None:
            self.emulator.invocations.start()
        return self

    def stop(self) -> None:
        """Stop serving and end the thread."""
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._http.close(), self._loop).result(timeout=5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()
        close_emulator(self.emulator)

    def __enter__(self) -> EmulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


_FLAGS: dict[str, Any] = {
    "host": str,
    "port": int,
    "latency_ms": float,
    "jitter_ms": float,
    "throttle_rate": float,
    "unavailable_rate": float,
    "model_timeout_rate": float,
    "billed_timeout_rate": float,
    "billed_timeout_mode": str,
    "hang_ms": float,
    "seed": int,
    "default_max_tokens": int,
    "flex_latency_ms": float,
    "batch_delay_ms": float,
    "batch_error_rate": float,
    "batch_min_records": int,
    "batch_max_records": int,
    "batch_status_errors": int,
    "quotas": json.loads,
    "quota_table": lambda text: text.lower() in ("1", "true", "yes", "on"),
    "quotas_file": str,
    "quota_region": str,
    "billing_file": str,
    "throttle_file": str,
    "pricing_file": str,
    "invocation_log_bucket": str,
    "invocation_log_prefix": str,
    "invocation_log_flush_ms": float,
    "invocation_log_account": str,
    "invocation_log_region": str,
    "s3_endpoint_url": str,
}


def parse_args(argv: list[str] | None = None) -> tuple[EmulatorSettings, Path | None]:
    """Settings from the environment overridden by flags, and the ``--port-file``."""
    parser = argparse.ArgumentParser(
        prog="palette-bedrock-emulator", description="Emulate Bedrock Runtime's Converse API."
    )
    for name, kind in _FLAGS.items():
        help_text = EmulatorSettings.model_fields[name].description
        optional: dict[str, Any] = {"nargs": "?", "const": True} if name == "quota_table" else {}
        parser.add_argument("--" + name.replace("_", "-"), type=kind, help=help_text, **optional)
    parser.add_argument("--fault-models", help="Comma-separated models faults apply to.")
    parser.add_argument("--script", help="Comma-separated outcomes of the first calls.")
    parser.add_argument("--port-file", type=Path, help="Write the bound port to this file.")
    args = parser.parse_args(argv)
    overrides = {name: getattr(args, name) for name in _FLAGS if getattr(args, name) is not None}
    for name in ("fault_models", "script"):
        if getattr(args, name) is not None:
            overrides[name] = [item for item in getattr(args, name).split(",") if item]
    settings = EmulatorSettings()
    merged = {**settings.model_dump(), **overrides}
    return EmulatorSettings.model_validate(merged), args.port_file


async def serve(settings: EmulatorSettings, port_file: Path | None = None) -> None:
    """Serve until SIGTERM or SIGINT."""
    emulator = build_emulator(settings)
    http = HttpServer(emulator)
    port = await http.start(settings.host, settings.port)
    if emulator.invocations is not None:
        emulator.invocations.start()
    if port_file is not None:
        temp = port_file.with_suffix(".tmp")
        temp.write_text(str(port), encoding="utf-8")
        temp.replace(port_file)
    config = json.dumps(emulator.faults.snapshot(), sort_keys=True)
    print(
        f"palette-bedrock-emulator listening on http://{settings.host}:{port} config={config}",
        file=sys.stderr,
        flush=True,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await http.close()
    close_emulator(emulator)


def run_cli(argv: list[str] | None = None) -> None:
    """Parse flags and serve."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    settings, port_file = parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(settings, port_file))
