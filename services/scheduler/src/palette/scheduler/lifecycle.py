"""Job lifecycle: start, pump partitions, react to outcomes, stop, finish.

Every step is safe to repeat: the conditional updates in the repository make a
redelivered message or a restarted scheduler carry on where things stand.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import structlog
from faststream.rabbit import RabbitBroker

from palette.common import failpoints
from palette.common import messages as m
from palette.common.broker import publish
from palette.common.money import usd_to_picos
from palette.common.pricing import PricingTable, UnknownModelError
from palette.common.seeds import SeedError
from palette.common.templates import TemplateError, TemplateSpec, analyse
from palette.scheduler.partitioning import (
    SeedSummary,
    lease_request,
    partition_ranges,
    record_estimate,
)
from palette.scheduler.repository import ACTIVE, IN_FLIGHT, Doc, SchedulerRepository
from palette.scheduler.settings import SchedulerSettings

log = structlog.get_logger("palette.scheduler")

SeedCounter = Callable[[str], Coroutine[Any, Any, SeedSummary]]
STOPPED = (m.JobStatus.CANCELLED, m.JobStatus.BUDGET_EXCEEDED, m.JobStatus.FAILED)
PLANS_KEPT = 1024
PLAN_CHARS_KEPT = 8_000_000
"""Characters of template text the kept plans may hold in all (a template may have 2 M)."""


@dataclass(frozen=True, slots=True)
class JobPlan:
    """What a started job's partitions are made of; fixed once the job runs."""

    template: TemplateSpec
    seed_key: str
    seed_count: int
    record_estimate: int

    @property
    def chars(self) -> int:
        """Characters of the template's prompts and system texts."""
        return sum(len(step.prompt) + len(step.system or "") for step in self.template.steps)


class Scheduler:
    """Moves jobs through their lifecycle."""

    def __init__(
        self,
        repo: SchedulerRepository,
        broker: RabbitBroker,
        pricing: PricingTable,
        settings: SchedulerSettings,
        count_seeds: SeedCounter,
    ) -> None:
        self.repo = repo
        self.broker = broker
        self.pricing = pricing
        self.settings = settings
        self.count_seeds = count_seeds
        self._plans: OrderedDict[str, JobPlan] = OrderedDict()
        self._plan_chars = 0

    async def plan(self, job_id: str) -> JobPlan | None:
        """A job's plan, read once and kept while the job is among the most recently used.

        At most ``PLANS_KEPT`` plans with ``PLAN_CHARS_KEPT`` characters of
        templates in all are kept. None for a job that is gone or not started
        yet (no seed count).
        """
        plan = self._plans.get(job_id)
        if plan is not None:
            self._plans.move_to_end(job_id)
            return plan
        job = await self.repo.job(job_id)
        if job is None or job.get("seed_count") is None or job.get("record_estimate") is None:
            return None
        plan = JobPlan(
            template=TemplateSpec.model_validate(job["template"]),
            seed_key=job["seed_key"],
            seed_count=int(job["seed_count"]),
            record_estimate=int(job["record_estimate"]),
        )
        if job_id in self._plans:  # another message of the job read it meanwhile
            return self._plans[job_id]
        self._plans[job_id] = plan
        self._plan_chars += plan.chars
        while len(self._plans) > PLANS_KEPT or self._plan_chars > PLAN_CHARS_KEPT:
            _, dropped = self._plans.popitem(last=False)
            self._plan_chars -= dropped.chars
        return plan

    # ------------------------------------------------------------ starting

    async def submit(self, msg: m.SubmitJob) -> None:
        """Create the job if new, split it into partitions and start it."""
        now = m.utcnow()
        job = await self.repo.upsert_job(
            msg.job_id,
            {
                "owner": msg.owner,
                "template": msg.template.model_dump(mode="json"),
                "template_id": msg.template_id,
                "template_version": msg.template_version,
                "seed_key": msg.seed_key,
                "num_records": msg.num_records,
                "budget_usd": str(msg.budget_usd),
                "budget_picos": usd_to_picos(msg.budget_usd),
                "output_format": msg.output_format.value,
                "partition_size": msg.partition_size,
                "priority": msg.priority,
                "status": m.JobStatus.QUEUED.value,
                "created_at": now,
                "updated_at": now,
                "records_done": 0,
                "slots": [],
                "export": None,
                "submit_published": True,
            },
        )
        if job["status"] != m.JobStatus.QUEUED.value:
            await self.pump(msg.job_id)
            return
        template = TemplateSpec.model_validate(job["template"])
        try:
            analyse(template)
            self.pricing.require(template.models)
            seeds = await self.count_seeds(job["seed_key"])
        except (TemplateError, UnknownModelError, SeedError) as exc:
            await self.fail_before_start(msg.job_id, str(exc))
            return
        size = job.get("partition_size") or self.settings.partition_size
        ranges = partition_ranges(job["num_records"], size)
        await self.repo.create_partitions(msg.job_id, ranges)
        before = await self.repo.move(
            msg.job_id,
            [m.JobStatus.QUEUED.value],
            m.JobStatus.RUNNING,
            seed_count=seeds.count,
            partition_size=size,
            partitions_total=len(ranges),
            record_estimate=record_estimate(template, self.pricing, seeds.largest_bytes),
            slots=[None] * self.settings.window,
            started_at=m.utcnow(),
        )
        if before is not None:
            log.info("job_started", job_id=msg.job_id, partitions=len(ranges), seeds=seeds.count)
            await self._status_changed(before, m.JobStatus.RUNNING)
        await self.pump(msg.job_id)

    async def fail_before_start(self, job_id: str, reason: str) -> None:
        """A job refused before any model call (unknown model, bad seed file)."""
        before = await self.repo.move(
            job_id,
            [m.JobStatus.QUEUED.value],
            m.JobStatus.FAILED,
            error=reason,
            finished_at=m.utcnow(),
            partitions_total=0,
        )
        if before is not None:
            log.warning("job_refused", job_id=job_id, reason=reason)
            await self._status_changed(before, m.JobStatus.FAILED, reason)

    # ------------------------------------------------------------- pumping

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
        plan = await self.plan(job_id)
        # No plan: not started yet (a repeated SubmitJob raced the start), so no estimate.
        estimate = 1 if plan is None else plan.record_estimate
        amount, minimum = lease_request(part["end"] - part["start"], estimate, int(part["needed"]))
        await publish(
            self.broker,
            m.ReserveBudget(
                message_id=f"reserve-{part['lease_id']}",
                job_id=job_id,
                partition=part["index"],
                lease_id=part["lease_id"],
                amount=amount,
                minimum=minimum,
            ),
        )

    async def reserved(self, msg: m.BudgetReserved) -> None:
        """A lease was granted: dispatch the partition with it."""
        before = await self.repo.move_partition(
            msg.job_id,
            msg.partition,
            msg.lease_id,
            "RESERVING",
            "DISPATCHED",
            fields={"lease_amount": msg.amount},
            inc={"attempt": 1},
        )
        if before is None:
            current = await self.repo.partition(msg.job_id, msg.partition)
            if (
                not current
                or current["status"] != "DISPATCHED"
                or current["lease_id"] != msg.lease_id
            ):
                return  # stale answer
            before = {**current, "attempt": current["attempt"] - 1}
        plan = await self.plan(msg.job_id)
        if plan is None:
            if await self.repo.job(msg.job_id) is None:
                return  # the job is gone
            raise RuntimeError(f"job {msg.job_id} is not started yet")  # redelivered later
        await publish(
            self.broker,
            m.GeneratePartition(
                message_id=f"generate-{msg.lease_id}",
                job_id=msg.job_id,
                partition=msg.partition,
                attempt=before["attempt"] + 1,
                start=before["start"],
                end=before["end"],
                lease_id=msg.lease_id,
                lease_amount=msg.amount,
                template=plan.template,
                seed_key=plan.seed_key,
                seed_count=plan.seed_count,
            ),
        )

    async def denied(self, msg: m.BudgetDenied) -> None:
        """No lease fits now: wait until a lease closes and returns money."""
        before = await self.repo.move_partition(
            msg.job_id,
            msg.partition,
            msg.lease_id,
            "RESERVING",
            "WAITING_BUDGET",
        )
        await self.repo.give_slot(msg.job_id, msg.lease_id)
        if before is None:
            return
        # A lease still open will announce its closing (LeaseClosed) after this
        # point and wake the partition. If none is open, every closing was
        # applied already: ask again now (accounting answers BudgetExceeded when
        # nothing is out on lease).
        if await self.repo.open_leases(msg.job_id) == 0:
            await self.repo.reopen_waiting(msg.job_id)
            await self.pump(msg.job_id)

    async def lease_closed(self, msg: m.LeaseClosed) -> None:
        """Money came back to the job: waiting partitions may ask again."""
        await self.repo.reopen_waiting(msg.job_id)
        await self.pump(msg.job_id)

    # ------------------------------------------------------------ outcomes

    async def records(self, msg: m.RecordsGenerated) -> None:
        """Count a written part toward the job's progress."""
        await self.repo.record_part(msg.job_id, msg.partition, msg.part_key, msg.records)

    async def completed(self, msg: m.PartitionCompleted) -> None:
        """An attempt ended: done, out of lease (ask again), or stopped."""
        target = {
            m.PartitionOutcome.DONE: "DONE",
            m.PartitionOutcome.LEASE_EXHAUSTED: "PENDING",
            m.PartitionOutcome.JOB_STOPPED: "STOPPED",
        }[msg.outcome]
        fields: Doc = {"records_done": msg.records_done}
        if msg.outcome is m.PartitionOutcome.LEASE_EXHAUSTED:
            fields["needed"] = msg.needed
        before = await self.repo.move_partition(
            msg.job_id,
            msg.partition,
            msg.lease_id,
            "DISPATCHED",
            target,
            fields=fields,
        )
        await self.repo.give_slot(msg.job_id, msg.lease_id)
        if before is not None:
            log.info(
                "partition_ended",
                job_id=msg.job_id,
                partition_id=msg.partition,
                outcome=msg.outcome.value,
                records=msg.records_done,
            )
        await self.repo.reopen_waiting(msg.job_id)
        await self.pump(msg.job_id)

    async def failed(self, msg: m.PartitionFailed) -> None:
        """An attempt failed: retry it, or fail the job after too many.

        An attempt that ended because its lease's holder was lost (a killed
        generator) is retried under a new lease and not counted as a failure:
        it says nothing about the partition.
        """
        part = await self.repo.partition(msg.job_id, msg.partition)
        if part is None:
            return
        lost = msg.lost_holder is not None
        retry = lost or (msg.retryable and part["failures"] + 1 < self.settings.max_attempts)
        before = await self.repo.move_partition(
            msg.job_id,
            msg.partition,
            msg.lease_id,
            "DISPATCHED",
            "PENDING" if retry else "FAILED",
            fields={"error": msg.error},
            inc={"holders_lost" if lost else "failures": 1},
        )
        await self.repo.give_slot(msg.job_id, msg.lease_id)
        if before is None:
            return
        log.warning(
            "partition_failed",
            job_id=msg.job_id,
            partition_id=msg.partition,
            error=msg.error,
            retry=retry,
            lost_holder=msg.lost_holder,
        )
        if not retry:
            await self.stop(
                msg.job_id, m.JobStatus.FAILED, f"partition {msg.partition}: {msg.error}"
            )
            return
        await self.repo.reopen_waiting(msg.job_id)
        await self.pump(msg.job_id)

    # ------------------------------------------------------------ stopping

    async def stop(self, job_id: str, status: m.JobStatus, reason: str) -> None:
        """Stop a job now; generators stop calling the model; it exports what it made."""
        before = await self.repo.move(
            job_id,
            ACTIVE,
            status,
            error=None if status is m.JobStatus.CANCELLED else reason,
            stop_reason=reason,
        )
        if before is None:
            return
        await publish(self.broker, m.JobStopped(job_id=job_id, status=status))
        await self.repo.stop_open_partitions(job_id)
        log.info("job_stopped", job_id=job_id, status=status.value, reason=reason)
        await self._status_changed(before, status, reason)
        await self.maybe_finish(job_id)

    # ----------------------------------------------------------- finishing

    async def maybe_finish(self, job_id: str) -> None:
        """Export once every partition is done, or once a stopped job is idle."""
        job = await self.repo.job(job_id)
        if job is None or job.get("export") is not None or not job.get("partitions_total"):
            return
        if await self.repo.open_leases(job_id):
            return  # the ledger is not final yet; LeaseClosed will call again
        status = m.JobStatus(job["status"])
        if status is m.JobStatus.RUNNING:
            if await self.repo.count(job_id, ["DONE"], negate=True):
                return
        elif status in STOPPED:
            if await self.repo.count(job_id, IN_FLIGHT):
                return
        else:
            return
        if not await self.repo.set_job(job_id, {"export": None}, {"export": {"status": "PENDING"}}):
            return
        await self.repo.recount_progress(job_id)
        await self.request_export(job)

    async def request_export(self, job: Doc) -> None:
        """Ask a generator to write the dataset (idempotent)."""
        await publish(
            self.broker,
            m.ExportJob(
                message_id=f"export-{job['_id']}",
                job_id=job["_id"],
                output_format=m.OutputFormat(job["output_format"]),
                expected_records=job["num_records"],
            ),
        )

    async def export_completed(self, msg: m.ExportCompleted) -> None:
        """The dataset is written: a running job is now complete."""
        export = {
            "status": "DONE",
            "key": msg.key,
            "records": msg.records,
            "incomplete": msg.incomplete,
            "bytes": msg.bytes,
            "format": msg.output_format.value,
        }
        if not await self.repo.set_job(
            msg.job_id, {"export.status": "PENDING"}, {"export": export}
        ):
            return
        before = await self.repo.move(
            msg.job_id, [m.JobStatus.RUNNING.value], m.JobStatus.COMPLETED, finished_at=m.utcnow()
        )
        if before is not None:
            log.info("job_completed", job_id=msg.job_id, records=msg.records)
            await self._status_changed(before, m.JobStatus.COMPLETED)
        else:
            await self.repo.set_job(msg.job_id, {"finished_at": None}, {"finished_at": m.utcnow()})

    async def export_failed(self, msg: m.ExportFailed) -> None:
        """The export could not be written: the job fails with the reason."""
        await self.repo.set_job(
            msg.job_id,
            {"export.status": "PENDING"},
            {"export": {"status": "FAILED", "error": msg.error}},
        )
        before = await self.repo.move(
            msg.job_id,
            [m.JobStatus.RUNNING.value],
            m.JobStatus.FAILED,
            error=f"export failed: {msg.error}",
            finished_at=m.utcnow(),
        )
        if before is not None:
            await self._status_changed(before, m.JobStatus.FAILED, msg.error)

    # ------------------------------------------------------------- restart

    async def resume(self) -> None:
        """After a restart: announce moves not announced, recount slots, re-ask leases, pump."""
        for job in await self.repo.unannounced():
            reason = job.get("stop_reason") or job.get("error")
            await self._announce(job, m.JobStatus(job["status"]), None, reason)
        for job in await self.repo.jobs_to_resume():
            job_id = job["_id"]
            await self.repo.resync_slots(job_id, job.get("slots") or [])
            await self.repo.recount_progress(job_id)
            for part in await self.repo.reserving(job_id):
                await self._reserve(job_id, part)
            if job["status"] == m.JobStatus.RUNNING.value:
                await self.pump(job_id)
            elif (job.get("export") or {}).get("status") == "PENDING":
                await self.request_export(job)
            else:
                await self.maybe_finish(job_id)
            log.info("job_resumed", job_id=job_id, status=job["status"])

    async def _status_changed(
        self, before: Doc, status: m.JobStatus, reason: str | None = None
    ) -> None:
        await self._announce(before, status, m.JobStatus(before["status"]), reason)

    async def _announce(
        self, job: Doc, status: m.JobStatus, previous: m.JobStatus | None, reason: str | None
    ) -> None:
        """Publish a move's ``JobStatusChanged`` (webhooks hear of it), then mark it announced."""
        if status.is_final:
            failpoints.hit("scheduler.before_final_announce")
        await publish(
            self.broker,
            m.JobStatusChanged(
                message_id=f"status-{job['_id']}-{status.value}",
                job_id=job["_id"],
                owner=job.get("owner", ""),
                status=status,
                previous=previous,
                reason=reason,
            ),
        )
        await self.repo.announced(job["_id"], status)
