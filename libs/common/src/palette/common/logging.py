"""structlog, configured once for every service.

JSON lines when stderr is not a terminal (or ``PALETTE_LOG_JSON=1``), key-value
console output otherwise. Bind ``job_id``, ``partition_id`` and ``message_id``
on every line that concerns them (message handlers get them bound by
``palette.common.observability.MessageContext``); with tracing on, every line
written inside a span carries its ``trace_id`` and ``span_id``.
"""

from __future__ import annotations

import logging
import sys

import structlog

from palette.common.tracing import add_trace_ids


def configure_logging(
    service: str, level: str = "INFO", json: bool | None = None, *, trace_ids: bool = False
) -> None:
    """Configure structlog and the standard library logging for one service.

    ``trace_ids`` adds the current span's ids to each line (only when tracing is on).
    """
    use_json = (not sys.stderr.isatty()) if json is None else json
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        *([add_trace_ids] if trace_ids else []),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if use_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    logging.basicConfig(level=max(numeric, logging.WARNING), stream=sys.stderr)
