"""An attempt's reads before its first call, made at once rather than one by one.

Before a partition makes its first call it needs the parts already in its
range, the job's status, whether its lease is closed, the seeds its records
draw and the incomplete records an earlier attempt left. None of these reads
depends on another, so they all start together (S3 on worker threads, the
database on the loop) and the first call waits for the slowest of them, not
for their sum. Nothing here touches the attempt's state: ``partition.attempt``
takes the results in its own order, so a stopped job or a closed lease still
ends the attempt before a seed is checked.

The seeds are read for the whole range, not only for the records missing from
it: which records are missing is known only once the parts are listed. A first
attempt needs them all anyway; a retry reads a few seeds it will not use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, NamedTuple, TypeVar

import structlog
from botocore.exceptions import BotoCoreError, ClientError

from palette.common import messages as m
from palette.common import seeds
from palette.generator.records import FinishedRecord
from palette.generator.runtime import GeneratorRuntime
from palette.generator.seed_draws import SeedDraws, load_draws

log = structlog.get_logger("palette.generator.partition")

READ_TIMEOUT_SECONDS = 10.0
"""The longest the job's status and the lease's state are waited for."""

T = TypeVar("T")
SeedRead = tuple[SeedDraws, dict[int, dict[str, Any]]]


class ReadProblem(NamedTuple):
    """Why a read the attempt needs failed, and whether another attempt may succeed."""

    error: str
    retryable: bool


class SetupReads:
    """The reads of one attempt, started on creation; ``close`` when done with them."""

    def __init__(self, msg: m.GeneratePartition, rt: GeneratorRuntime) -> None:
        self._tasks: list[asyncio.Task[Any]] = []
        self.parts = self._start(
            asyncio.to_thread(rt.storage.list_parts, msg.job_id, msg.start, msg.end)
        )
        self.status = self._start(
            asyncio.wait_for(rt.jobs.status(msg.job_id), READ_TIMEOUT_SECONDS)
        )
        self.lease_closed = self._start(
            asyncio.wait_for(rt.leases.is_closed(msg.lease_id), READ_TIMEOUT_SECONDS)
        )
        self.seeds = self._start(read_range_seeds(msg, rt))
        self.incomplete = self._start(
            asyncio.to_thread(rt.storage.read_incomplete, msg.job_id, msg.start, msg.end)
        )

    def _start(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        task = asyncio.create_task(work)
        self._tasks.append(task)
        return task

    async def close(self) -> None:
        """Cancel the reads not taken and wait for every one (errors not taken are dropped).

        A read on a worker thread cannot be cancelled: its end is waited for.
        """
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def read_range_seeds(msg: m.GeneratePartition, rt: GeneratorRuntime) -> SeedRead:
    """The draws of the attempt's range and every seed they draw.

    Raises:
        seeds.SeedError: the seed file cannot be read as seeds.
        ClientError, BotoCoreError: reading it failed.
    """
    draws = await load_draws(rt.storage, msg)
    positions = {draws.position(i) for i in range(msg.start, msg.end)}
    return draws, await asyncio.to_thread(rt.storage.read_seeds, msg.seed_key, positions)


async def job_stopped(reads: SetupReads, rt: GeneratorRuntime, job_id: str) -> bool:
    """Whether the job is stopped: a broadcast seen, or the status read at the start."""
    if rt.stops.is_stopped(job_id):
        return True
    try:
        status: m.JobStatus | None = await reads.status
    except Exception as exc:  # the broadcast still protects the job
        log.warning("job_status_unreadable", error=f"{type(exc).__name__}: {exc}")
        return False
    if status is not None and status.is_final:
        rt.stops.stop(job_id, status)
        return True
    return False


async def lease_closed(reads: SetupReads, lease_id: str) -> bool:
    """Whether accounting already closed the lease (a redelivery after the end).

    Money spent under a closed lease would never reach the ledger, so such an
    attempt makes no call.
    """
    try:
        closed = await reads.lease_closed
    except Exception as exc:
        log.warning("lease_unreadable", error=f"{type(exc).__name__}: {exc}")
        return False
    if closed:
        log.warning("lease_already_closed", lease_id=lease_id)
    return closed


async def seeds_read(reads: SetupReads, seed_key: str) -> SeedRead | ReadProblem:
    """The draws and seeds, or why they could not be read."""
    try:
        return await reads.seeds
    except seeds.SeedError as exc:
        return ReadProblem(f"cannot read the seed file {seed_key}: {exc}", retryable=False)
    except (ClientError, BotoCoreError) as exc:
        return ReadProblem(f"reading the seed file {seed_key} failed: {exc}", retryable=True)


async def incomplete_read(reads: SetupReads) -> dict[int, FinishedRecord] | ReadProblem:
    """The incomplete records of the range, or why they could not be read."""
    try:
        return await reads.incomplete
    except (ClientError, BotoCoreError) as exc:
        return ReadProblem(f"reading the incomplete records failed: {exc}", retryable=True)
