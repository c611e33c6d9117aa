"""A small asyncio HTTP/1.1 server: keep-alive, Content-Length and chunked bodies.

Just enough HTTP for botocore (urllib3), httpx and curl, with very little work
per request. Handlers are plain functions: they return a ``Response`` at once,
or ``Later(delay, then)`` to answer after ``delay`` seconds with what ``then()``
returns, scheduled with ``loop.call_later``. A call that waits costs a timer,
not a thread or a task, so one event loop holds thousands of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl

MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 64 * 1024 * 1024

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Request:
    """One request; header names in lower case, ``path`` still percent-encoded."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON (an empty body is ``{}``)."""
        return json.loads(self.body) if self.body else {}


@dataclass(slots=True)
class Response:
    """One response."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_type: str = "application/json"


@dataclass(slots=True)
class Later:
    """Answer after ``delay`` seconds with the result of ``then()``."""

    delay: float
    then: Callable[[], Response | Later]


class DropConnection(Exception):
    """Raised by a handler (or a ``then``) to close the connection without an answer."""


Handler = Callable[[Request], Response | Later]


def json_response(status: int, data: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    """A JSON response."""
    return Response(status, json.dumps(data).encode(), headers or [])


_REASONS = {status.value: status.phrase for status in HTTPStatus}


def encode_response(response: Response, keep_alive: bool) -> bytes:
    """The response on the wire."""
    lines = [
        f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'Unknown')}",
        f"Content-Type: {response.content_type}",
        f"Content-Length: {len(response.body)}",
        "Connection: keep-alive" if keep_alive else "Connection: close",
    ]
    lines.extend(f"{name}: {value}" for name, value in response.headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


def parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    """Method, target, version and headers (names in lower case) of a request head."""
    request_line, *header_lines = head.decode("latin-1").split("\r\n")
    method, target, version = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, target, version, headers


def parse_chunked(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """A chunked body from ``start``: (body, end), or None while incomplete."""
    chunks: list[bytes] = []
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(bytes(buffer[position:line_end]).split(b";", 1)[0].strip(), 16)
        position = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", position - 2)
            return (b"".join(chunks), trailer_end + 4) if trailer_end >= 0 else None
        if len(buffer) < position + size + 2:
            return None
        chunks.append(bytes(buffer[position : position + size]))
        position += size + 2
        if position - start > MAX_BODY_BYTES:
            raise ValueError("body too large")


class _Connection(asyncio.Protocol):
    """One client connection: parses requests in order and answers each."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._busy = False
        self._continued = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._server.connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        self._server.connections.discard(self)

    def abort(self) -> None:
        """Close the connection at once."""
        if self._transport is not None:
            self._transport.abort()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if not self._busy:
            self._next()

    def _fail(self, status: int, message: str) -> None:
        if self._transport is not None:
            body = json_response(status, {"message": message})
            self._transport.write(encode_response(body, keep_alive=False))
            self._transport.close()

    def _next(self) -> None:
        """Parse and answer the next complete request in the buffer, if any."""
        buffer = self._buffer
        head_end = buffer.find(b"\r\n\r\n")
        if head_end < 0:
            if len(buffer) > MAX_HEADER_BYTES:
                self._fail(431, "request header too large")
            return
        try:
            method, target, version, headers = parse_head(bytes(buffer[:head_end]))
            body_start = head_end + 4
            if "chunked" in headers.get("transfer-encoding", "").lower():
                parsed = parse_chunked(buffer, body_start)
            else:
                length = int(headers.get("content-length") or 0)
                if not 0 <= length <= MAX_BODY_BYTES:
                    raise ValueError("bad Content-Length")
                end = body_start + length
                parsed = (bytes(buffer[body_start:end]), end) if len(buffer) >= end else None
        except ValueError as exc:
            self._fail(400, str(exc))
            return
        if parsed is None:
            if headers.get("expect", "").lower() == "100-continue" and not self._continued:
                self._continued = True
                if self._transport is not None:
                    self._transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return
        body, end = parsed
        del buffer[:end]
        self._continued = False
        connection = headers.get("connection", "").lower()
        keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        path, _, query = target.partition("?")
        request = Request(method, path, dict(parse_qsl(query)) if query else {}, headers, body)
        self._busy = True
        self._settle(lambda: self._server.handler(request), keep_alive)

    def _settle(self, step: Callable[[], Response | Later], keep_alive: bool) -> None:
        try:
            result = step()
            while isinstance(result, Later) and result.delay <= 0:
                result = result.then()
        except DropConnection:
            self.abort()
            return
        except Exception:
            log.exception("handler failed")
            result = json_response(500, {"message": "internal error"})
        if isinstance(result, Later):
            loop = asyncio.get_running_loop()
            loop.call_later(result.delay, self._settle, result.then, keep_alive)
            return
        if self._transport is None:
            return
        self._transport.write(encode_response(result, keep_alive))
        if not keep_alive:
            self._transport.close()
            return
        self._busy = False
        if self._buffer:
            self._next()


class HttpServer:
    """Serves one handler on the running asyncio event loop."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections: set[_Connection] = set()
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 picks a free port) and return the port."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Connection(self), host, port, backlog=1024, reuse_address=True
        )
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and close every open connection."""
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.abort()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
