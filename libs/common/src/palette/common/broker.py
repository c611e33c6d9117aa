"""Broker construction, topology declaration, publishing and dead-lettering.

``make_broker`` is the one way a service gets a RabbitBroker; ``publish`` is the
one way a message leaves a service. See ``palette.common.topology`` for why the
acknowledgement and publish options are what they are.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from typing import Any

import aio_pika.exceptions
import structlog
from faststream import AckPolicy
from faststream.context import Context as ContextField
from faststream.middlewares import BaseMiddleware
from faststream.rabbit import Channel, RabbitBroker
from faststream.response import PublishType
from pydantic import ValidationError

from palette.common.messages import Message
from palette.common.metrics import DEAD_LETTERED
from palette.common.observability import broker_middlewares
from palette.common.topology import (
    BROADCAST,
    COMMANDS,
    DEAD_LETTERS,
    ERROR_HEADER,
    EVENTS,
    NOTIFICATIONS,
    QUEUE_HEADER,
    ROUTES,
    Queues,
    QueueSpec,
)

log = structlog.get_logger("palette.broker")

PUBLISH_TIMEOUT_SECONDS = 10.0


class LoopContextField(ContextField):
    """A context field whose ``use`` runs on the event loop (see ``Context``)."""

    async def use(self, /, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        """Put the context value in ``kwargs`` (``faststream.Context``'s own lookup)."""
        resolved: dict[str, Any] = super().use(**kwargs)
        return resolved


_NO_DEFAULT: Any = object()


def Context(real_name: str = "", *, default: Any = _NO_DEFAULT) -> Any:
    """``faststream.Context`` (a value of the app's context as a handler argument), on the loop.

    FastDepends runs a custom field's synchronous ``use`` in a worker thread,
    so every ``faststream.Context`` argument costs each message a round trip
    through the thread pool, though reading the context never blocks. This
    field's ``use`` is a coroutine, which FastDepends awaits in place. Only
    for async handlers (all of ours): a sync handler would get a coroutine.
    Without ``default`` a value missing from the context is an error, as with
    ``faststream.Context``.
    """
    if default is _NO_DEFAULT:
        return LoopContextField(real_name=real_name)
    return LoopContextField(real_name=real_name, default=default)


class PermanentError(Exception):
    """A message that can never be processed: dead-letter it, do not retry."""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}"
            for err in exc.errors()[:5]
        )
        return f"invalid message: {problems}"[:1000]
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return f"invalid message: the body is not JSON ({exc})"[:1000]
    return f"{type(exc).__name__}: {exc}"[:1000]


def dead_letter_middleware(queues: Iterable[QueueSpec]) -> type[BaseMiddleware[Any, Any]]:
    """A middleware that sends unprocessable messages to their dead-letter queue.

    Unparsable bodies, bodies of the wrong shape and ``PermanentError`` are
    published to ``palette.dlx`` with the reason in a header, then acknowledged,
    so the consumer goes on at once. Any other error propagates and the
    message is requeued until the queue's delivery limit dead-letters it.
    """
    by_route = {(spec.exchange.name, spec.routing_key): spec.name for spec in queues}

    class DeadLetter(BaseMiddleware[Any, Any]):
        async def consume_scope(self, call_next: Any, msg: Any) -> Any:
            try:
                return await call_next(msg)
            except (
                ValidationError,
                json.JSONDecodeError,
                UnicodeDecodeError,
                PermanentError,
            ) as exc:
                raw = msg.raw_message
                queue = by_route.get((raw.exchange, raw.routing_key), raw.routing_key or "")
                reason = _reason(exc)
                broker = self.context.get("broker")
                headers = dict(raw.headers or {})
                headers.update({ERROR_HEADER: reason, QUEUE_HEADER: queue})
                await broker.publish(
                    raw.body,
                    exchange=DEAD_LETTERS,
                    routing_key=queue,
                    headers=headers,
                    persist=True,
                    mandatory=True,
                    message_id=raw.message_id,
                    content_type=raw.content_type,
                    timeout=PUBLISH_TIMEOUT_SECONDS,
                )
                DEAD_LETTERED.labels(queue=queue, reason=type(exc).__name__).inc()
                log.warning("dead_lettered", queue=queue, reason=reason, message_id=raw.message_id)
                return None

    return DeadLetter


# Handlers whose delivery was cancelled while they still run (see run_to_completion).
_detached: set[asyncio.Future[Any]] = set()


def _detached_done(work: asyncio.Future[Any]) -> None:
    _detached.discard(work)
    if not work.cancelled() and work.exception() is not None:
        log.error("detached_handler_failed", error=repr(work.exception()))


class RunToCompletion(BaseMiddleware[Any, Any]):
    """Run each handler to its end even when the client cancels its delivery.

    When the broker closes a channel (a restart, a lost connection, a consumer
    acknowledgement timeout) the AMQP client cancels the handler of every
    delivery on it. A handler cut between two of its steps (a scheduler that
    took a window slot but had not yet asked for the lease; a generator in the
    middle of paid model calls) would leave work half-done that nobody resumes
    until a restart. So the handler runs in a task of its own, shielded: the
    cancelled delivery is not acknowledged and comes back, and since every
    handler is idempotent the redelivery finds the work done, or in progress
    under a generator's claim, and has no second effect.
    """

    async def consume_scope(self, call_next: Any, msg: Any) -> Any:
        """Await the handler in a shielded task; on cancellation it goes on."""
        work = asyncio.ensure_future(call_next(msg))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            if not work.done():
                log.warning("delivery_cancelled_handler_goes_on")
                _detached.add(work)
                work.add_done_callback(_detached_done)
            raise


class NonMandatoryReplies(BaseMiddleware[Any, Any]):
    """Publish a handler's reply (to the request's ``reply_to``) without ``mandatory``.

    FastStream answers every message that carries a ``reply_to`` with the
    handler's return value, published mandatory by default. RabbitMQ does not
    count a direct reply-to address (``amq.rabbitmq.reply-to.*``, what a
    request waits on) as a queue: a mandatory publish to it is delivered *and*
    returned ``NO_ROUTE``. On our channels (``on_return_raises``) the return
    failed the handler after its work was done, so the request was requeued and
    run again up to the delivery limit (a preview called the model six times).
    A reply whose caller has gone is of no use to anyone, so it is not mandatory.
    """

    async def publish_scope(self, call_next: Any, cmd: Any) -> Any:
        """Clear ``mandatory`` on replies; other publishes pass unchanged."""
        if cmd.publish_type is PublishType.REPLY:
            cmd.publish_options["mandatory"] = False
        return await call_next(cmd)


def make_broker(
    url: str,
    *,
    queues: Iterable[QueueSpec] = (),
    prefetch: int = 16,
    logger: Any = None,
) -> RabbitBroker:
    """A broker with confirms, returned-message errors and requeue-on-error.

    Its middlewares, outermost first: tracing (when on), message metrics, log
    context (``palette.common.observability``), dead-lettering, then
    ``RunToCompletion`` around the handler; ``NonMandatoryReplies`` sets how
    replies are published.
    """
    specs = tuple(queues)
    return RabbitBroker(
        url,
        default_channel=Channel(
            prefetch_count=prefetch, publisher_confirms=True, on_return_raises=True
        ),
        ack_policy=AckPolicy.NACK_ON_ERROR,
        middlewares=[
            *broker_middlewares(specs),
            dead_letter_middleware(specs),
            RunToCompletion,
            NonMandatoryReplies,
        ],
        logger=logger if logger is not None else structlog.get_logger("faststream"),
        reconnect_interval=1.0,
        graceful_timeout=10.0,
    )


async def declare_topology(broker: RabbitBroker) -> None:
    """Declare every exchange, queue, binding and dead-letter queue (idempotent).

    Every service runs this at start, so a mandatory publish finds the queues
    of consumers that have not started yet.
    """
    for exchange in (COMMANDS, EVENTS, BROADCAST, DEAD_LETTERS):
        await broker.declare_exchange(exchange)
    dlx = await broker.declare_exchange(DEAD_LETTERS)
    for spec in Queues.all():
        target = await broker.declare_exchange(spec.exchange)
        queue = await broker.declare_queue(spec.queue())
        await queue.bind(target, routing_key=spec.routing_key)
        dead = await broker.declare_queue(spec.dlq())
        await dead.bind(dlx, routing_key=spec.name)


# A channel the broker closed (a consumer timeout, a restart) is reopened by the
# robust connection within moments; a publish meanwhile fails with one of these. A
# channel the broker closed raises the reason it was closed with (``ChannelClosed``:
# a consumer acknowledgement timeout is a PRECONDITION_FAILED) until it reopens.
_TRANSIENT = (
    aio_pika.exceptions.ChannelInvalidStateError,
    aio_pika.exceptions.ChannelClosed,
    aio_pika.exceptions.AMQPConnectionError,
)
PUBLISH_RETRY_SECONDS = 15.0


async def publish(
    broker: RabbitBroker,
    message: Message,
    *,
    headers: Mapping[str, Any] | None = None,
    retry_seconds: float = PUBLISH_RETRY_SECONDS,
) -> None:
    """Publish a message on its route: persistent and confirmed.

    Mandatory (an unroutable publish raises) unless the message is a
    notification (see ``topology.NOTIFICATIONS``). A publish that meets a
    closed channel or a lost connection is tried again, every 0.25 s, for up
    to ``retry_seconds`` while the robust connection reopens it; then the
    error propagates (the handler fails and its message is redelivered). A
    publish that raised may still have been routed, so a repeat is harmless
    only because every consumer is idempotent by ``message_id``.
    """
    exchange, routing_key = ROUTES[type(message)]
    deadline = asyncio.get_running_loop().time() + retry_seconds
    while True:
        try:
            await broker.publish(
                message.model_dump_json().encode(),
                exchange=exchange,
                routing_key=routing_key,
                persist=True,
                mandatory=type(message) not in NOTIFICATIONS,
                message_id=message.message_id,
                message_type=type(message).__name__,
                content_type="application/json",
                headers=dict(headers or {}),
                timeout=PUBLISH_TIMEOUT_SECONDS,
            )
        except _TRANSIENT as exc:
            if asyncio.get_running_loop().time() >= deadline:
                raise
            log.info("publish_retry", error=f"{type(exc).__name__}: {exc}"[:200])
            await asyncio.sleep(0.25)
        else:
            return
