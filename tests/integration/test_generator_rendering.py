"""Slow templates render in a render process: the generator's loop goes on meanwhile.

A generator process runs every partition, claim renewal and stop broadcast on
one event loop. These tests render templates of about 0.9 s (a loop sized on
this machine) with the generator's own ``Renderer``, and watch the loop: a probe
task that ticks every 5 ms, the claim renewals written to the database, and a
``JobStopped`` published on the broker from another thread while the render
runs. The same test with every render on the loop (the behaviour before) sees
the stop and the renewals wait for the render.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from typing import Any

import pytest
import structlog

from palette.common import messages as m
from palette.common.broker import declare_topology, make_broker
from palette.common.service import RUNTIME
from palette.common.templates import RenderTimeoutError, TemplateError, TemplateSpec, render
from palette.common.topology import BROADCAST, Broadcasts
from palette.devstack.stack import DevStack
from palette.generator import handlers, rendering
from palette.generator.app import open_runtime
from palette.generator.partition import run_partition
from palette.generator.rendering import Renderer
from palette.generator.runtime import GeneratorRuntime
from palette.generator.settings import GeneratorSettings
from tests.integration.jobs import publish_to
from tests.integration.waiting import wait_until_async

pytestmark = pytest.mark.integration

SLOW = "{% for i in range(n) %}{% for j in range(1000) %}{% endfor %}{% endfor %}"
FOREVER = "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}"
TICK = 0.005


def loops_for(seconds: float) -> int:
    """The ``n`` for which ``SLOW`` renders in about ``seconds`` on this machine."""
    started = time.perf_counter()
    render(SLOW, {"n": 100}, seconds=60)
    took = time.perf_counter() - started
    return max(1, min(99_999, round(100 * seconds / took)))


class LoopProbe:
    """Ticks every 5 ms; ``worst`` is the longest the loop kept a tick waiting."""

    def __init__(self) -> None:
        self.worst = 0.0
        self.ticks: list[float] = []

    async def run(self) -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(TICK)
            now = time.monotonic()
            self.ticks.append(now)
            self.worst = max(self.worst, now - before - TICK)

    def ticks_within(self, start: float, end: float) -> int:
        return sum(1 for tick in self.ticks if start < tick < end)


async def probing(probe: LoopProbe) -> asyncio.Task[None]:
    task = asyncio.create_task(probe.run())
    await wait_until_async(lambda: probe.ticks, what="the loop probe to tick", interval=TICK)
    return task


class TestRenderProcesses:
    async def test_a_slow_render_moves_to_a_render_process_and_renders_the_same(self) -> None:
        source = SLOW + "{{ xs | random }}"
        context = {"n": loops_for(0.9), "xs": list(range(1000))}
        renderer = Renderer(30.0, 0.005, 1)
        probe = LoopProbe()
        task = await probing(probe)
        try:
            started = time.monotonic()
            text = await renderer.render(source, context, field="steps[1].prompt", draws="j/3")
            ended = time.monotonic()
            assert renderer.started
        finally:
            task.cancel()
            await renderer.close()
        assert text == render(source, context, field="steps[1].prompt", seconds=30, draws="j/3")
        assert probe.ticks_within(started, ended) >= 20, "the loop stood still while it rendered"
        assert not renderer.routes.on_loop(source, main_thread=True)

    async def test_errors_in_a_render_process_name_the_field(self) -> None:
        renderer = Renderer(0.3, 0.005, 1)
        try:
            with pytest.raises(RenderTimeoutError, match=r"^steps\[1\]\.prompt: .* than 0\.3s"):
                await renderer.render(FOREVER, {}, field="steps[1].prompt")
            assert renderer.started
            slow, context = SLOW + "{{ topic }}", {"n": loops_for(0.05)}
            with pytest.raises(TemplateError, match=r"^steps\[0\]\.system: undefined variable"):
                await renderer.render(slow, context, field="steps[0].system")
        finally:
            await renderer.close()

    async def test_a_render_process_that_does_not_answer_is_killed_and_replaced(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Killed 0.5 s into the render, before its own alarm (2 s) can cut it short.
        monkeypatch.setattr(rendering, "KILL_GRACE_SECONDS", -1.5)
        renderer = Renderer(2.0, 0.005, 1)
        try:
            with (
                structlog.testing.capture_logs() as logs,
                pytest.raises(RenderTimeoutError, match=r"^steps\[0\]\.prompt: .* than 2s"),
            ):
                await renderer.render(FOREVER, {}, field="steps[0].prompt")
            assert [e["event"] for e in logs if e["event"] == "render_process_killed"]
            slow = SLOW + "answered"
            text = await renderer.render(slow, {"n": loops_for(0.05)}, field="steps[0].prompt")
            assert text == "answered"
        finally:
            await renderer.close()


SEEDS = [{"topic": f"topic {i}"} for i in range(4)]
MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"


def slow_second_step(loops: int) -> TemplateSpec:
    """Step b renders slowly once step a answered (fast when the seeds are checked)."""
    slow_b = SLOW.replace("range(n)", f"range({loops} if steps.a.output else 0)")
    return TemplateSpec.model_validate(
        {
            "steps": [
                {"id": "a", "model": MODEL, "prompt": "A colour for {{ topic }}", "max_tokens": 8},
                {"id": "b", "model": MODEL, "prompt": slow_b + "{{ steps.a.output }}"},
            ]
        }
    )


@pytest.fixture
def generator_env(devstack_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The generator's settings read the dev stack's environment."""
    for name, value in devstack_env.items():
        monkeypatch.setenv(name, value)


class Watch:
    """What happened when: slow renders, claim renewals, the stop's publish and handling."""

    def __init__(self, rt: GeneratorRuntime, rabbitmq_url: str, job_id: str) -> None:
        self.slow: list[list[float]] = []
        self.renewals: list[float] = []
        self.sent: float | None = None
        self.handled: float | None = None
        self.publisher: threading.Timer | None = None
        self._wrap(rt, rabbitmq_url, job_id)

    def _wrap(self, rt: GeneratorRuntime, url: str, job_id: str) -> None:
        render_, renew, stop = rt.renderer.render, rt.claims.renew, rt.stops.stop

        async def rendering(source: str, context: Any, **kwargs: Any) -> str:
            interval = [time.monotonic(), float("inf")]
            if kwargs["field"] == "steps[1].prompt" and context["steps"]["a"]["output"]:
                self.slow.append(interval)
                if self.publisher is None:  # the stop arrives 0.1 s into the first slow render
                    self.publisher = threading.Timer(0.1, self._publish_stop, (url, job_id))
                    self.publisher.start()
            try:
                return await render_(source, context, **kwargs)
            finally:
                interval[1] = time.monotonic()

        async def renewing(lease_id: str, holder: str) -> bool:
            mine = await renew(lease_id, holder)
            self.renewals.append(time.monotonic())
            return mine

        def stopping(stopped_job: str, status: m.JobStatus) -> bool:
            if stopped_job == job_id and self.handled is None:
                self.handled = time.monotonic()
            return stop(stopped_job, status)

        rt.renderer.render = rendering  # type: ignore[method-assign]
        rt.claims.renew = renewing  # type: ignore[method-assign]
        rt.stops.stop = stopping  # type: ignore[method-assign]

    def _publish_stop(self, url: str, job_id: str) -> None:
        """On its own thread and connection, as the broker would deliver it meanwhile."""
        stop = m.JobStopped(job_id=job_id, status=m.JobStatus.BUDGET_EXCEEDED)

        async def send() -> None:
            self.sent = time.monotonic()
            body = stop.model_dump_json().encode()
            await publish_to(url, BROADCAST.name, "", body, stop.message_id)

        asyncio.run(send())

    def window(self) -> tuple[float, float]:
        """From the first slow render's start to the last one's end."""
        return min(start for start, _ in self.slow), max(end for _, end in self.slow)


class TestSlowRenderInAGenerator:
    @pytest.mark.parametrize(
        ("loop_seconds", "stalls"),
        [(0.005, False), (60.0, True)],
        ids=["slow-renders-in-a-render-process", "every-render-on-the-loop-as-before"],
    )
    @pytest.mark.usefixtures("generator_env")
    async def test_a_stop_and_claim_renewals_go_on_during_a_slow_render(
        self,
        devstack: DevStack,
        rabbitmq_url: str,
        s3: Any,
        mongo: Any,
        loop_seconds: float,
        stalls: bool,
    ) -> None:
        settings = GeneratorSettings(
            concurrency=2,
            render_seconds=60.0,
            render_loop_seconds=loop_seconds,
            render_processes=1,
            claim_ttl_seconds=1.8,  # valid 1.35 s after a renewal: room for a loaded machine
            status_poll_seconds=0,
            part_flush_seconds=30.0,
        )
        job_id = f"job-{uuid.uuid4().hex[:12]}"
        seed_key = f"seed-data/u-{uuid.uuid4().hex[:8]}/seeds.jsonl"
        body = "\n".join(json.dumps(seed) for seed in SEEDS).encode()
        s3.put_object(Bucket=devstack.bucket, Key=seed_key, Body=body)
        msg = m.GeneratePartition(
            job_id=job_id,
            partition=0,
            attempt=1,
            start=0,
            end=2,
            lease_id=uuid.uuid4().hex,
            lease_amount=10**12,
            template=slow_second_step(loops_for(1.8)),  # longer than the claim stays valid
            seed_key=seed_key,
            seed_count=len(SEEDS),
            part_size=2,
        )
        # Accounting writes a lease before it grants it (a missing one counts as closed).
        mongo["leases"].insert_one({"_id": msg.lease_id, "job_id": job_id, "closed": False})
        published: list[m.Message] = []

        async def publish(message: m.Message) -> None:
            published.append(message)

        broker = make_broker(rabbitmq_url)
        stops = Broadcasts.JOB_STOPPED
        broker.subscriber(stops.queue(), exchange=stops.exchange)(handlers.job_stopped)
        probe = LoopProbe()
        async with open_runtime(settings, broker) as rt:
            watch = Watch(rt, rabbitmq_url, job_id)
            broker.context.set_global(RUNTIME, rt)
            await broker.connect()
            await declare_topology(broker)
            await broker.start()
            task = await probing(probe)
            try:
                async with rt.claims.claim(msg.lease_id, msg.job_id) as claim:
                    assert claim is not None
                    await run_partition(msg, rt, publish, claim)
            finally:
                task.cancel()
                await broker.stop()
                if watch.publisher is not None:
                    watch.publisher.join()
        assert watch.sent is not None
        assert watch.handled is not None
        running = [(a, b) for a, b in watch.slow if a < watch.sent < b]
        assert running, "the stop must be sent while a slow render runs"
        running_until = min(b for _, b in running)
        shortest = min(b - a for a, b in watch.slow)
        renewed_during = [t for t in watch.renewals for a, b in watch.slow if a < t < b]
        if stalls:  # the check that this test sees the stall it is about
            assert watch.handled >= running_until
            assert not renewed_during
            assert probe.worst >= shortest / 2
            return
        assert watch.handled < running_until, "the stop waited for the slow render"
        assert watch.handled - watch.sent < shortest / 2
        assert renewed_during, "no claim renewal was written during a slow render"
        assert probe.worst < shortest / 2
        end_event = published[-1]
        assert isinstance(end_event, m.PartitionCompleted)
        assert end_event.outcome is m.PartitionOutcome.JOB_STOPPED
        billed = devstack.emulator_control().billing(job_id=job_id)
        assert [call["request_metadata"]["step"] for call in billed] == ["a", "a"]
