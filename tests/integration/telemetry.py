"""What the observability tests read: an OTLP/HTTP receiver, Prometheus scrapes, JSON log lines.

``OtlpReceiver`` is a real OTLP/HTTP traces endpoint (protobuf
``ExportTraceServiceRequest`` on ``POST /v1/traces``) run in the test process;
the services export to it exactly as they would to a collector.
"""

from __future__ import annotations

import gzip
import http.server
import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.waiting import wait_until


@dataclass(frozen=True)
class ReceivedSpan:
    """One exported span, with its service's name."""

    service: str
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    attributes: dict[str, Any]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind in {"string_value", "int_value", "bool_value"} else None


def decode_spans(body: bytes) -> list[ReceivedSpan]:
    """The spans of an ``ExportTraceServiceRequest``."""
    request = ExportTraceServiceRequest.FromString(body)
    out = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                out.append(
                    ReceivedSpan(
                        service=str(resource.get("service.name", "")),
                        trace_id=span.trace_id.hex(),
                        span_id=span.span_id.hex(),
                        parent_span_id=span.parent_span_id.hex(),
                        name=span.name,
                        attributes={a.key: _value(a.value) for a in span.attributes},
                    )
                )
    return out


@dataclass
class OtlpReceiver:
    """An OTLP/HTTP traces endpoint on 127.0.0.1 collecting every span it is sent."""

    spans: list[ReceivedSpan] = field(default_factory=list)
    requests: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: http.server.ThreadingHTTPServer | None = None

    @property
    def endpoint(self) -> str:
        """The base URL to configure (``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> OtlpReceiver:
        """Listen on a free port, in a thread."""
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                spans = decode_spans(body)
                with receiver._lock:
                    receiver.spans.extend(spans)
                    receiver.requests += 1
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_: Any) -> None:
                return

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def received(self) -> list[ReceivedSpan]:
        """A copy of what arrived so far."""
        with self._lock:
            return list(self.spans)

    def wait_for(
        self, check: Callable[[list[ReceivedSpan]], bool], timeout: float = 30.0
    ) -> list[ReceivedSpan]:
        """The spans once ``check`` accepts them (AssertionError after ``timeout``)."""

        def complete() -> list[ReceivedSpan] | None:
            spans = self.received()
            return spans if check(spans) else None

        def got() -> str:
            return f"complete spans; got {sorted({(s.service, s.name) for s in self.received()})}"

        return wait_until(complete, what=got, timeout=timeout)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Every sample a ``/metrics`` endpoint serves, by (name, labels)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and wanted <= ls)


def log_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON lines of a service's log (other lines, e.g. start banners, skipped)."""
    return json_lines(path.read_text(encoding="utf-8", errors="replace"))


def json_lines(text: str) -> Iterator[dict[str, Any]]:
    """The JSON lines of a piece of a log."""
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                yield json.loads(line)
            except ValueError:
                continue
