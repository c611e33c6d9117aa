"""Rendering prompts without holding up the event loop.

Every claim renewal, stop broadcast, model call and partition of a generator
process shares one event loop, so a render must never hold it for long. A
render starts on the loop with a short limit of CPU time
(``render_loop_seconds``, a few milliseconds: nearly every prompt takes
microseconds; CPU time, so that a render the machine merely paused is not
taken for a slow one). One that overruns it is abandoned and made again in a
render process with the full limit (``render_seconds``, wall-clock), while the
loop goes on; its template is then remembered as slow (``Routes``) and its
later renders go straight to a render process until one of them takes less
CPU time than the loop's limit there. A render process times a render with its
own alarm; one that does not answer ``KILL_GRACE_SECONDS`` after the limit
(stuck in C code) is killed and replaced (pebble). The processes start on the
first slow render, from a fresh interpreter (spawn: no copy of the loop's
threads and locks), and are sent the template's text and variables, never
compiled objects.

A render gives the same text wherever it runs: the ``random`` filter's picks
are seeded with the render's ``draws`` key (``palette.common.templates``).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
import time
from collections.abc import Mapping
from typing import Any

import structlog
from cachetools import FIFOCache
from pebble import ProcessExpired, ProcessPool

from palette.common.templates import (
    RenderLimitError,
    RenderTimeoutError,
    render,
)

log = structlog.get_logger("palette.generator.rendering")

KILL_GRACE_SECONDS = 1.0
"""How long past its limit a render process may go silent before it is killed."""
SLOW_TEMPLATES_KEPT = 256


class Routes:
    """Where each template renders: on the loop, or in a render process. Pure logic.

    A template renders on the loop unless its last render took more CPU time
    than the loop's limit; on a thread other than the main one there is no alarm to
    cut a render short, so everything renders in a render process.
    """

    def __init__(self, loop_seconds: float, capacity: int = SLOW_TEMPLATES_KEPT) -> None:
        self.loop_seconds = loop_seconds
        # Templates last seen slow; the one seen longest ago goes first beyond
        # ``capacity`` (FIFOCache: a key written again moves to the back).
        self._slow: FIFOCache[str, None] = FIFOCache(capacity)

    def on_loop(self, source: str, *, main_thread: bool) -> bool:
        """Whether to try ``source`` on the loop first."""
        return main_thread and self.loop_seconds > 0 and source not in self._slow

    def took(self, source: str, seconds: float) -> None:
        """A render of ``source`` took ``seconds`` of CPU (infinity: cut short on the loop)."""
        if seconds <= self.loop_seconds:
            self._slow.pop(source, None)
            return
        self._slow[source] = None


def render_timed(
    source: str, context: dict[str, Any], field: str, seconds: float, draws: str | None
) -> tuple[str, float]:
    """In a render process: the rendered text and the CPU seconds it took."""
    started = time.thread_time()
    text = render(source, context, field=field, seconds=seconds, draws=draws)
    return text, time.thread_time() - started


class Renderer:
    """Renders prompts for one generator process: on its loop when fast, else in a process.

    Args:
        seconds: the wall-clock limit of one render.
        loop_seconds: the limit of a render on the loop before it moves to a
            render process (0: every render in a render process; ``seconds`` or
            more: every render on the loop).
        processes: render processes at most.
    """

    def __init__(self, seconds: float, loop_seconds: float, processes: int) -> None:
        self.seconds = seconds
        self.routes = Routes(min(loop_seconds, seconds))
        self._processes = processes
        self._processes_pool: ProcessPool | None = None

    async def render(
        self,
        source: str,
        context: Mapping[str, Any],
        *,
        field: str,
        draws: str | None = None,
    ) -> str:
        """Render one prompt within the limits (``palette.common.templates.render``)."""
        loop_seconds = self.routes.loop_seconds
        whole = loop_seconds >= self.seconds  # the full (wall-clock) limit on the loop
        main = threading.current_thread() is threading.main_thread()
        if self.routes.on_loop(source, main_thread=main):
            try:
                return render(
                    source, context, field=field, seconds=loop_seconds, draws=draws, cpu=not whole
                )
            except RenderTimeoutError:
                if whole:
                    raise
                self.routes.took(source, float("inf"))
        text, took = await self._in_process(source, context, field, draws)
        self.routes.took(source, took)
        return text

    async def _in_process(
        self, source: str, context: Mapping[str, Any], field: str, draws: str | None
    ) -> tuple[str, float]:
        future = await asyncio.to_thread(  # the first one starts the processes: not on the loop
            self._pool().schedule,
            render_timed,
            args=(source, dict(context), field, self.seconds, draws),
            timeout=self.seconds + KILL_GRACE_SECONDS,
        )
        try:
            text, took = await asyncio.wrap_future(future)
        except TimeoutError:
            log.warning("render_process_killed", field=field, seconds=self.seconds)
            problem = f"render took longer than {self.seconds:.3g}s"
            raise RenderTimeoutError(field, problem) from None
        except ProcessExpired as exc:
            problem = f"the render process ended abruptly (exit code {exc.exitcode})"
            raise RenderLimitError(field, problem) from None
        return str(text), float(took)

    @property
    def started(self) -> bool:
        """Whether the render processes were started (by a slow render)."""
        return self._processes_pool is not None

    def _pool(self) -> ProcessPool:
        """The render processes (they start with the first render scheduled)."""
        if self._processes_pool is None:
            context = multiprocessing.get_context("spawn")
            self._processes_pool = ProcessPool(max_workers=self._processes, context=context)
            log.info("render_processes_started", processes=self._processes)
        return self._processes_pool

    async def close(self) -> None:
        """Stop the render processes (a render in progress ends with them)."""
        if self._processes_pool is not None:
            pool, self._processes_pool = self._processes_pool, None
            pool.stop()  # type: ignore[no-untyped-call]
            await asyncio.to_thread(pool.join)
