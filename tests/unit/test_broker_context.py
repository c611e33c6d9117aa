"""Handler arguments from the app's context, read on the event loop (palette.common.broker)."""

from __future__ import annotations

import threading

import anyio.to_thread
import pytest
from faststream import FastStream
from faststream.rabbit import RabbitBroker, TestRabbitBroker
from pydantic import ValidationError

from palette.common.broker import Context

pytestmark = pytest.mark.unit


class TestLoopContext:
    async def test_a_handler_gets_the_context_value_without_a_worker_thread(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def no_thread(*args: object, **kwargs: object) -> None:
            raise AssertionError("a context argument went through the thread pool")

        monkeypatch.setattr(anyio.to_thread, "run_sync", no_thread)
        broker = RabbitBroker()
        app = FastStream(broker)
        app.context.set_global("repo", {"name": "the repository"})
        seen: list[tuple[object, str]] = []

        @broker.subscriber("context-test")
        async def handle(body: str, repo: dict[str, str] = Context("repo")) -> None:
            seen.append((repo, threading.current_thread().name))

        async with TestRabbitBroker(broker) as test_broker:
            await test_broker.publish("hello", queue="context-test")
        assert seen == [({"name": "the repository"}, threading.main_thread().name)]

    async def test_a_missing_value_takes_the_default(self) -> None:
        broker = RabbitBroker()
        FastStream(broker)
        seen: list[object] = []

        @broker.subscriber("context-default")
        async def handle(body: str, value: int = Context("absent", default=7)) -> None:
            seen.append(value)

        async with TestRabbitBroker(broker) as test_broker:
            await test_broker.publish("x", queue="context-default")
        assert seen == [7]

    async def test_a_missing_value_without_a_default_is_an_error(self) -> None:
        broker = RabbitBroker()
        FastStream(broker)

        @broker.subscriber("context-required")
        async def handle(body: str, value: int = Context("absent")) -> None:
            raise AssertionError("the handler ran without its context value")

        async with TestRabbitBroker(broker) as test_broker:
            with pytest.raises(ValidationError, match="value"):
                await test_broker.publish("x", queue="context-required")
