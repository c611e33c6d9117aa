"""The gateway's broker connection: started in the app lifespan, retried until it is up.

A gateway whose broker is down still starts, answers ``/health``, reports
not ready on ``/ready``, and accepts jobs: their ``SubmitJob`` waits in the
outbox (``palette.gateway.outbox``) until the broker takes it.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import TypeVar

import structlog
from faststream.rabbit import RabbitBroker

from palette.common.broker import declare_topology, publish
from palette.common.messages import Message
from palette.common.topology import ROUTES

ReplyT = TypeVar("ReplyT", bound=Message)

log = structlog.get_logger("palette.gateway")

MAX_RETRY_SECONDS = 10.0


class BrokerUnavailableError(ConnectionError):
    """The broker is not connected (yet)."""


class BrokerPublisher:
    """Publishes messages on a FastStream RabbitBroker with confirms and a timeout."""

    def __init__(self, broker: RabbitBroker, *, timeout_seconds: float) -> None:
        self._broker = broker
        self._timeout = timeout_seconds
        self._started = asyncio.Event()

    @property
    def started(self) -> bool:
        """Whether the broker has connected and the topology is declared."""
        return self._started.is_set()

    async def connect(self) -> None:
        """Start the broker and declare the topology, retrying with backoff until both succeed."""
        delay = 0.5
        while True:
            try:
                await self._broker.start()
                await declare_topology(self._broker)
            except Exception as exc:
                log.warning("broker_unavailable", error=repr(exc), retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_RETRY_SECONDS)
            else:
                self._started.set()
                log.info("broker_connected")
                return

    async def stop(self) -> None:
        """Close the broker connection."""
        self._started.clear()
        await self._broker.stop()

    async def publish(self, message: Message) -> None:
        """Publish persistent, mandatory and confirmed within the timeout.

        Raises:
            BrokerUnavailableError: before the broker has connected.
            Exception: whatever the broker raised (unroutable, timeout, closed).
        """
        if not self.started:
            raise BrokerUnavailableError("the broker is not connected")
        # No retrying here: a request answers at once and the outbox sends later.
        await asyncio.wait_for(
            publish(self._broker, message, retry_seconds=0), timeout=self._timeout
        )

    async def request(self, message: Message, reply: type[ReplyT], wait_seconds: float) -> ReplyT:
        """Publish a request and wait for its reply (RabbitMQ direct reply-to).

        The request expires in the queue when nobody took it in time, so a late
        consumer does not do work whose answer nobody waits for.

        Raises:
            BrokerUnavailableError: before the broker has connected.
            TimeoutError: no reply within ``wait_seconds``.
            pydantic.ValidationError: the reply is not a ``reply``.
        """
        if not self.started:
            raise BrokerUnavailableError("the broker is not connected")
        exchange, routing_key = ROUTES[type(message)]
        answer = await self._broker.request(
            message.model_dump_json().encode(),
            exchange=exchange,
            routing_key=routing_key,
            mandatory=True,
            timeout=wait_seconds,
            expiration=timedelta(seconds=wait_seconds),
            message_id=message.message_id,
            message_type=type(message).__name__,
            content_type="application/json",
        )
        return reply.model_validate_json(answer.body)

    async def ping(self) -> bool:
        """Whether the broker connection is up."""
        if not self.started:
            return False
        return await self._broker.ping(timeout=self._timeout)
