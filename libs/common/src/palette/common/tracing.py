"""OpenTelemetry tracing: exported over OTLP/HTTP when an endpoint is set, off otherwise.

``configure`` turns it on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (the standard
variable, read by ``CommonSettings.otlp_endpoint``) names a collector. Then:

* the gateway opens a server span per request (``TraceRequests``), continuing
  the caller's ``traceparent`` if it sent one, and answers with a
  ``traceresponse`` header naming the trace;
* every publish carries the current trace in the W3C ``traceparent`` header
  and every consumer continues it (FastStream's ``RabbitTelemetryMiddleware``
  in ``palette.common.broker.make_broker``), so one job is one trace from
  ``POST /jobs`` through SubmitJob, ReserveBudget, GeneratePartition,
  RecordsGenerated, the ledger and the export;
* log lines carry ``trace_id`` and ``span_id`` (``add_trace_ids``).

Off (no endpoint, or ``OTEL_SDK_DISABLED=true``), nothing is installed: no
middleware, no log processor, and ``span`` uses OpenTelemetry's no-op tracer.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

from faststream.rabbit.opentelemetry import RabbitTelemetryMiddleware
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, StatusCode, format_span_id, format_trace_id
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

INSTRUMENTATION = "palette"
TRACES_PATH = "v1/traces"
UNTRACED_PATHS = frozenset({"/health", "/ready"})
_PROPAGATOR = TraceContextTextMapPropagator()


class _State:
    provider: TracerProvider | None = None
    tracer: trace.Tracer = trace.NoOpTracer()


_state = _State()


def traces_url(endpoint: str) -> str:
    """The traces URL of an OTLP/HTTP base endpoint (the spec's ``/v1/traces`` rule)."""
    base = endpoint.rstrip("/")
    return base if base.endswith("/" + TRACES_PATH) else f"{base}/{TRACES_PATH}"


def configure(
    service: str,
    endpoint: str | None,
    *,
    exporter: SpanExporter | None = None,
    set_global: bool = True,
) -> bool:
    """Turn tracing on for this process when an endpoint (or an exporter) is given.

    Args:
        service: the service name (``service.name`` is ``palette-<service>``).
        endpoint: the OTLP/HTTP base URL, e.g. ``http://collector:4318``; None or
            empty leaves tracing off.
        exporter: export here instead, span by span (tests).
        set_global: also make this OpenTelemetry's global tracer provider.

    Returns:
        Whether tracing is on.
    """
    disabled = os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"
    if exporter is None and (not endpoint or disabled):
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    resource = Resource.create(
        {
            SERVICE_NAME: f"palette-{service}",
            "service.namespace": "plot-palette",
            SERVICE_INSTANCE_ID: f"{socket.gethostname()}-{os.getpid()}",
        }
    )
    provider = TracerProvider(resource=resource)
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        assert endpoint is not None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(traces_url(endpoint))))
    if set_global:
        trace.set_tracer_provider(provider)
    _state.provider = provider
    _state.tracer = provider.get_tracer(INSTRUMENTATION)
    return True


def reset() -> None:
    """Turn tracing off again, flushing what was recorded (tests)."""
    if _state.provider is not None:
        _state.provider.shutdown()
    _state.provider = None
    _state.tracer = trace.NoOpTracer()


def enabled() -> bool:
    """Whether this process traces."""
    return _state.provider is not None


def broker_middleware() -> RabbitTelemetryMiddleware | None:
    """FastStream's tracing middleware (spans and ``traceparent`` headers), or None when off."""
    if _state.provider is None:
        return None
    return RabbitTelemetryMiddleware(tracer_provider=_state.provider)


def span(name: str, attributes: Mapping[str, AttributeValue] | None = None) -> Any:
    """A child span of the current one for the ``with`` block (no-op when off)."""
    return _state.tracer.start_as_current_span(name, attributes=attributes)


def set_attributes(attributes: Mapping[str, AttributeValue]) -> None:
    """Set attributes on the current span (nothing when there is none)."""
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes(attributes)


def traceparent() -> str | None:
    """The current trace as a W3C ``traceparent`` value, or None outside any trace."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


@contextlib.contextmanager
def resumed(parent: str | None) -> Iterator[None]:
    """Run the block inside the trace ``parent`` (a ``traceparent`` value) names."""
    if not parent:
        yield
        return
    token = otel_context.attach(_PROPAGATOR.extract({"traceparent": parent}))
    try:
        yield
    finally:
        otel_context.detach(token)


def add_trace_ids(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Any:
    """Structlog processor: ``trace_id`` and ``span_id`` of the current span, if any."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict.setdefault("trace_id", format_trace_id(ctx.trace_id))
        event_dict.setdefault("span_id", format_span_id(ctx.span_id))
    return event_dict


def traceresponse(span_context: trace.SpanContext) -> str:
    """The W3C ``traceresponse`` header value naming a span."""
    return (
        f"00-{format_trace_id(span_context.trace_id)}-{format_span_id(span_context.span_id)}"
        f"-{int(span_context.trace_flags):02x}"
    )


ASGIApp = Any


class TraceRequests:
    """ASGI middleware: one server span per HTTP request (health probes excepted).

    The span continues the request's ``traceparent``, is named ``METHOD
    /route/{template}`` once the route is known, and the response carries a
    ``traceresponse`` header with its trace id.
    """

    def __init__(self, app: ASGIApp, untraced: frozenset[str] = UNTRACED_PATHS) -> None:
        self.app = app
        self.untraced = untraced

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Handle one ASGI connection."""
        if scope.get("type") != "http" or scope.get("path") in self.untraced:
            await self.app(scope, receive, send)
            return
        headers: Mapping[str, str] = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers", ())
        }
        method = str(scope.get("method", "GET"))
        with _state.tracer.start_as_current_span(
            method,
            context=_PROPAGATOR.extract(headers),
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": str(scope.get("path", ""))},
        ) as current:
            answer = traceresponse(current.get_span_context()).encode()

            async def send_traced(message: MutableMapping[str, Any]) -> None:
                if message.get("type") == "http.response.start":
                    status = int(message.get("status", 0))
                    current.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        current.set_status(StatusCode.ERROR)
                    message = {
                        **message,
                        "headers": [*message.get("headers", ()), (b"traceresponse", answer)],
                    }
                await send(message)

            try:
                await self.app(scope, receive, send_traced)
            finally:
                route = scope.get("path_template")
                if route:
                    current.update_name(f"{method} {route}")
                    current.set_attribute("http.route", str(route))
