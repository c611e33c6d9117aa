"""One place that turns on a process's logs, traces and metrics, and the broker's share.

``setup`` runs first in every service's ``main``: tracing (when an OTLP
endpoint is set), structlog (with trace ids when tracing is on), then the
metrics endpoint. ``broker_middlewares`` is what ``make_broker`` adds to every
broker, outermost first: tracing (when on), FastStream's Prometheus
middleware, and ``MessageContext``, which binds the message's ``message_id``,
``job_id`` and ``partition_id`` to every log line written while it is handled.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog
from faststream.middlewares import BaseMiddleware

from palette.common import metrics, tracing
from palette.common.logging import configure_logging
from palette.common.settings import CommonSettings
from palette.common.topology import QueueSpec

log = structlog.get_logger("palette.observability")


def setup(service: str, settings: CommonSettings) -> None:
    """Configure tracing, logging and the metrics endpoint of this process.

    Raises:
        metrics.MetricsPortError: the metrics port cannot be listened on.
    """
    traced = tracing.configure(service, settings.otlp_endpoint)
    configure_logging(service, settings.log_level, settings.log_json, trace_ids=traced)
    if traced:
        log.info("tracing_enabled", endpoint=settings.otlp_endpoint)
    metrics.serve(service, settings.metrics_port)


def message_fields(body: Any, message_id: str | None) -> dict[str, Any]:
    """A message's log fields: ``message_id``, ``job_id``, ``partition_id`` when it has them."""
    fields: dict[str, Any] = {}
    if isinstance(body, dict):
        for key, name, kind in (
            ("message_id", "message_id", str),
            ("job_id", "job_id", str),
            ("partition", "partition_id", int),
        ):
            value = body.get(key)
            if isinstance(value, kind) and not isinstance(value, bool):
                fields[name] = value
    if "message_id" not in fields and message_id:
        fields["message_id"] = message_id
    return fields


class MessageContext(BaseMiddleware[Any, Any]):
    """Binds a consumed message's ids to the log lines (and trace span) of its handling.

    The body is decoded once here; FastStream caches it for the handler. A
    body that does not decode binds the AMQP ``message_id`` alone (the
    dead-letter middleware inside this one deals with it).
    """

    async def consume_scope(self, call_next: Any, msg: Any) -> Any:
        """Handle the message with its ids bound."""
        try:
            body = await msg.decode()
        except Exception:
            body = None
        fields = message_fields(body, msg.message_id)
        if "job_id" in fields:
            tracing.set_attributes({f"palette.{k}": v for k, v in fields.items()})
        with structlog.contextvars.bound_contextvars(**fields):
            return await call_next(msg)


def broker_middlewares(queues: Iterable[QueueSpec]) -> list[Any]:
    """Tracing (when on), message metrics and log context, outermost first."""
    telemetry = tracing.broker_middleware()
    return [
        *([telemetry] if telemetry is not None else []),
        metrics.message_metrics(queues),
        MessageContext,
    ]
