"""The dev stack's HTTP serving: plain-function handlers on an aiohttp server.

Handlers are plain functions of a ``Request``: they return a ``Response`` at
once, or ``Later(delay, then)`` to answer after ``delay`` seconds with what
``then()`` returns, or raise ``DropConnection`` to close the connection without
an answer. aiohttp does the HTTP/1.1 (keep-alive, Content-Length and chunked
bodies, ``Expect: 100-continue``); a call that waits holds a sleeping
coroutine, not a thread, so one event loop holds thousands of them.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

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


async def settle(handler: Handler, request: Request) -> Response:
    """The handler's answer to ``request``, once its ``Later`` delays have passed.

    Raises DropConnection when the handler drops the connection; any other
    failure is logged and answered with a 500.
    """
    try:
        result = handler(request)
        while isinstance(result, Later):
            if result.delay > 0:
                await asyncio.sleep(result.delay)
            result = result.then()
    except DropConnection:
        raise
    except Exception:
        log.exception("handler failed")
        return json_response(500, {"message": "internal error"})
    return result


class HttpServer:
    """Serves one handler on the running asyncio event loop."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/{path:.*}", self._serve)
        # No access log (one line per model call would cost more than the call);
        # close() aborts calls still waiting rather than waiting for them.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.0)

    async def _serve(self, incoming: web.Request) -> web.StreamResponse:
        request = Request(
            incoming.method,
            incoming.rel_url.raw_path,
            dict(incoming.query),
            {name.lower(): value for name, value in incoming.headers.items()},
            await incoming.read(),
        )
        try:
            answer = await settle(self.handler, request)
        except DropConnection:
            if incoming.transport is not None:
                incoming.transport.abort()
            return web.Response(status=499)  # never sent: the connection is gone
        return web.Response(
            status=answer.status,
            body=answer.body,
            headers=answer.headers,
            content_type=answer.content_type,
        )

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 picks a free port) and return the port."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port, backlog=1024, reuse_address=True)
        await site.start()
        return int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Stop listening and close every open connection."""
        await self._runner.cleanup()
