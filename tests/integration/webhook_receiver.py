"""A webhook receiver for tests (a real HTTP server on 127.0.0.1), and ``/webhooks`` helpers.

It records every request (path, headers, body) and every TCP connection, and
answers as a test tells it: ``plan(path, [500, 500])`` answers the next two
requests on ``path`` with 500 (then 200), ``redirect(path, to)`` answers 302,
``hold(path)`` keeps the next request on ``path`` waiting until released.
Its URLs name the host ``localhost``, the host the test services allow-list.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook

from palette.devstack.client import GatewayClient
from tests.integration.waiting import wait_until


@dataclass(frozen=True)
class Received:
    """One request the receiver got."""

    path: str
    headers: dict[str, str]
    body: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def webhook_id(self) -> str:
        """The ``webhook-id`` header."""
        return self.headers["webhook-id"]

    def verify(self, secret: str) -> Any:
        """The body, verified with a Standard Webhooks library (raises when it does not verify)."""
        return Webhook(secret).verify(self.body, self.headers)


class Receiver:
    """The server; use it as a context manager."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._received: list[Received] = []
        self._plans: dict[str, deque[int]] = defaultdict(deque)
        self._redirects: dict[str, str] = {}
        self._holds: dict[str, threading.Event] = {}
        self.connections = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        for event in list(self._holds.values()):
            event.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def port(self) -> int:
        """The port it listens on."""
        return int(self._server.server_address[1])

    def url(self, path: str, host: str = "localhost") -> str:
        """An http URL of ``path`` on this receiver."""
        return f"http://{host}:{self.port}{path}"

    def plan(self, path: str, statuses: list[int]) -> None:
        """Answer the next requests on ``path`` with these statuses, then 200."""
        with self._lock:
            self._plans[path].extend(statuses)

    def redirect(self, path: str, location: str) -> None:
        """Answer every request on ``path`` with 302 to ``location``."""
        self._redirects[path] = location

    def hold(self, path: str) -> threading.Event:
        """Keep the next request on ``path`` unanswered until the event returned is set."""
        event = threading.Event()
        self._holds[path] = event
        return event

    def received(self, path: str | None = None) -> list[Received]:
        """Requests so far (on ``path``), oldest first."""
        with self._lock:
            return [r for r in self._received if path is None or r.path == path]

    def wait_for(
        self, path: str, count: int, timeout: float = 60.0, what: str = ""
    ) -> list[Received]:
        """Wait until ``count`` requests arrived on ``path``; those requests."""
        return wait_until(
            lambda: (got := self.received(path)) and len(got) >= count and got,
            what=what or f"{count} requests on {path}",
            timeout=timeout,
            interval=0.05,
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                with receiver._lock:
                    receiver.connections += 1
                super().setup()

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    receiver._received.append(Received(self.path, headers, body))
                    status = (
                        receiver._plans[self.path].popleft() if receiver._plans[self.path] else 200
                    )
                held = receiver._holds.pop(self.path, None)
                if held is not None:
                    held.wait(120)
                location = receiver._redirects.get(self.path)
                try:
                    self.send_response(302 if location else status)
                    if location:
                        self.send_header("Location", location)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass  # the sender went away meanwhile

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def create_webhook(api: GatewayClient, url: str, events: list[str] | None = None) -> dict[str, Any]:
    """``POST /webhooks`` (201 expected): the webhook with its secret."""
    body: dict[str, Any] = {"url": url}
    if events is not None:
        body["events"] = events
    response = api.http.post("/webhooks", json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def deliveries(api: GatewayClient, webhook_id: str) -> list[dict[str, Any]]:
    """The webhook's deliveries (the first 100), newest first."""
    response = api.http.get(f"/webhooks/{webhook_id}/deliveries", params={"limit": 100})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def wait_settled(api: GatewayClient, webhook_id: str, count: int) -> list[dict[str, Any]]:
    """The webhook's deliveries once there are ``count`` and none is pending."""
    return wait_until(
        lambda: (
            (items := deliveries(api, webhook_id))
            and len(items) == count
            and all(d["status"] != "pending" for d in items)
            and items
        ),
        what=f"{count} deliveries of {webhook_id} delivered or failed",
        timeout=120,
        interval=0.05,
    )


def send_test(api: GatewayClient, webhook_id: str) -> str:
    """``POST /webhooks/{id}/test`` (202 expected): the delivery's id."""
    response = api.http.post(f"/webhooks/{webhook_id}/test")
    assert response.status_code == 202, response.text
    delivery_id: str = response.json()["delivery_id"]
    return delivery_id
