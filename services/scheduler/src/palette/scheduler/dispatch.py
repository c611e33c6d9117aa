"""Partitions through their attempts: leases asked for within the job's window, answers, outcomes.

One half of the scheduler: ``Scheduler`` (``lifecycle.py``) is this and the
job's start, stop and finish. A job's window is its ``slots``: a partition
takes one when the pump claims it for a new lease and gives it back when the
lease is denied or its attempt ends. Which partition moves are legal and what
an attempt's end decides is in ``states.py``.
"""

from __future__ import annotations

import asyncio
import uuid
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import structlog
from faststream.rabbit import RabbitBroker

from palette.common import failpoints
from palette.common import messages as m
from palette.common.broker import publish
from palette.scheduler import commands
from palette.scheduler.repository import Doc, SchedulerRepository
from palette.scheduler.settings import SchedulerSettings
from palette.scheduler.states import (
    PartitionEvent,
    completion_event,
    dispatched_under,
    failure_event,
    pause_until,
)

if TYPE_CHECKING:
    from palette.scheduler.lifecycle import JobPlan

log = structlog.get_logger("palette.scheduler")

LeaseEnd = m.BudgetDenied | m.PartitionCompleted | m.PartitionFailed
"""A message that ends what a lease was asked for: denied, or its attempt ended."""


class PartitionDispatch(ABC):
    """Pumps a job's partitions through leases and attempts, and reacts to their ends."""

    repo: SchedulerRepository
    broker: RabbitBroker
    settings: SchedulerSettings

    @abstractmethod
    async def plan(self, job_id: str) -> JobPlan | None:
        """The started job's plan (template, seeds, record estimate); None before it starts."""

    @abstractmethod
    async def stop(self, job_id: str, status: m.JobStatus, reason: str) -> None:
        """Stop the job with ``status``."""

    @abstractmethod
    async def maybe_finish(self, job_id: str) -> None:
        """Export the job if nothing of it runs any more."""

    @abstractmethod
    async def resend_exports(self) -> None:
        """Send again the command of exports asked for whose publish failed."""

    async def pump(self, job_id: str) -> None:
        """Ask for leases for pending partitions while the window has room.

        A job that had a pending partition is not finished, so only a pump that
        found none looks whether the job is.
        """
        claimed = False
        while True:
            lease_id = uuid.uuid4().hex
            if not await self.repo.take_slot(job_id, lease_id):
                break
            part = await self.repo.claim_pending(job_id, lease_id)
            if part is None:
                await self.repo.give_slot(job_id, lease_id)
                break
            claimed = True
            await self._reserve(job_id, part)
        if not claimed:
            await self.maybe_finish(job_id)

    async def _reserve(self, job_id: str, part: Doc) -> None:
        """Ask accounting for the claimed partition's lease.

        The claim is never handed back when the publish fails: a publish that
        raised may have reached accounting, whose answer will find the partition.
        ``publish`` waits out a channel the broker closed meanwhile (a consumer
        timeout while this handler ran); a claim left RESERVING after that is
        asked again by ``resume``.
        """
        await failpoints.reached("scheduler.before_reserve")
        plan = await self.plan(job_id)
        # No plan: not started yet (a repeated SubmitJob raced the start), so no estimate.
        estimate = 1 if plan is None else plan.record_estimate
        await publish(self.broker, commands.reserve_budget(job_id, part, estimate))

    async def reserved(self, msg: m.BudgetReserved) -> None:
        """A lease was granted: dispatch the partition with it."""
        before = await self.repo.move_partition(
            msg.job_id,
            msg.partition,
            msg.lease_id,
            PartitionEvent.RESERVED,
            fields={"lease_amount": msg.amount},
            inc={"attempt": 1},
        )
        if before is None:
            current = await self.repo.partition(msg.job_id, msg.partition)
            if current is None or not dispatched_under(current, msg.lease_id):
                return  # stale answer
            before = {**current, "attempt": current["attempt"] - 1}
        plan = await self.plan(msg.job_id)
        if plan is None:
            if await self.repo.job(msg.job_id) is None:
                return  # the job is gone
            raise RuntimeError(f"job {msg.job_id} is not started yet")  # redelivered later
        command = commands.generate_partition(msg, before, plan)
        await publish(self.broker, command)

    async def denied(self, msg: m.BudgetDenied) -> None:
        """No lease fits now: wait until a lease closes and returns money."""
        if await self._end_lease(msg, PartitionEvent.DENIED) is None:
            return
        # A lease still open will announce its closing (LeaseClosed) after this
        # point and wake the partition. If none is open, every closing was
        # applied already: ask again now (accounting answers BudgetExceeded when
        # nothing is out on lease).
        if await self.repo.open_leases(msg.job_id) == 0:
            await self.wake(msg.job_id)

    async def lease_closed(self, msg: m.LeaseClosed) -> None:
        """Money came back to the job: waiting partitions may ask again.

        When none was waiting, no partition became pending here (every move to
        pending pumps after it), so only whether the job is finished is looked at.
        """
        if await self.repo.reopen_waiting(msg.job_id):
            await self.pump(msg.job_id)
        else:
            await self.maybe_finish(msg.job_id)

    async def wake(self, job_id: str) -> None:
        """Partitions waiting for money ask again, and the window fills."""
        await self.repo.reopen_waiting(job_id)
        await self.pump(job_id)

    async def _end_lease(
        self, msg: LeaseEnd, event: PartitionEvent, fields: Doc | None = None, **inc: int
    ) -> Doc | None:
        """Move the lease's partition by ``event`` and free its slot; the partition before."""
        before = await self.repo.move_partition(
            msg.job_id, msg.partition, msg.lease_id, event, fields=fields, inc=inc or None
        )
        await self.repo.give_slot(msg.job_id, msg.lease_id)
        return before

    # ------------------------------------------------------------ outcomes

    async def records(self, msg: m.RecordsGenerated) -> None:
        """Count a written part toward the job's progress."""
        await self.repo.record_part(msg.job_id, msg.partition, msg.part_key, msg.records)

    async def completed(self, msg: m.PartitionCompleted) -> None:
        """An attempt ended: done, out of lease (ask again), stopped, or paused (a model away)."""
        fields: Doc = {"records_done": msg.records_done}
        if msg.outcome is m.PartitionOutcome.LEASE_EXHAUSTED:
            fields["needed"] = msg.needed
        event = completion_event(msg.outcome)
        until = pause_until(m.utcnow(), self.settings.pause_seconds)
        if event is PartitionEvent.PAUSE:
            fields |= {"error": msg.reason, "paused_until": until}
        if await self._end_lease(msg, event, fields) is not None:
            if event is PartitionEvent.PAUSE:
                await self.repo.note_paused(msg.job_id, msg.partition, msg.reason, until)
            log.info(
                "partition_ended",
                job_id=msg.job_id,
                partition_id=msg.partition,
                outcome=msg.outcome.value,
                records=msg.records_done,
                reason=msg.reason or None,
            )
        await self.wake(msg.job_id)

    async def resume_paused(self) -> None:
        """Partitions whose pause is over take new leases like any pending one."""
        for part in await self.repo.paused_due(m.utcnow()):
            job_id, index = part["job_id"], part["index"]
            resumed = await self.repo.move_partition(
                job_id, index, part["lease_id"], PartitionEvent.RESUME
            )
            await self.repo.clear_paused(job_id, index)
            if resumed is not None:
                log.info("partition_resumed", job_id=job_id, partition_id=index)
                await self.pump(job_id)

    async def resume_paused_forever(self) -> None:
        """``resume_paused`` and ``resend_exports`` every ``pause_check_seconds``."""
        while True:
            try:
                await self.resume_paused()
                await self.resend_exports()
            except Exception:  # the database or broker may be away a while: try again next time
                log.exception("resume_paused_failed")
            await asyncio.sleep(self.settings.pause_check_seconds)

    async def failed(self, msg: m.PartitionFailed) -> None:
        """An attempt failed: retry it, or fail the job after too many (``failure_event``)."""
        part = await self.repo.partition(msg.job_id, msg.partition)
        if part is None:
            return
        lost = msg.lost_holder is not None
        event = failure_event(
            failures=part["failures"],
            retryable=msg.retryable,
            lost_holder=lost,
            max_attempts=self.settings.max_attempts,
        )
        counted = {"holders_lost" if lost else "failures": 1}
        if await self._end_lease(msg, event, {"error": msg.error}, **counted) is None:
            await self.pump(msg.job_id)  # a redelivery: the move may have been made, not its pump
            return
        retry = event is PartitionEvent.RETRY
        log.warning(
            "partition_failed",
            job_id=msg.job_id,
            partition_id=msg.partition,
            error=msg.error,
            retry=retry,
            lost_holder=msg.lost_holder,
        )
        if retry:
            await self.wake(msg.job_id)
        else:
            await self.stop(
                msg.job_id, m.JobStatus.FAILED, f"partition {msg.partition}: {msg.error}"
            )
