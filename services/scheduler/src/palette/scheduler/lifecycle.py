"""Job lifecycle: start, pump partitions, react to outcomes, stop, finish.

The orchestration only: which moves are legal and what an outcome decides is
in ``states.py``, what is sent in ``commands.py``; the partitions' leases and
attempts are ``dispatch.py``. Every step is safe to
repeat: the repository applies each move as a conditional update, so a
redelivered message or a restarted scheduler carries on where things stand.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from cachetools import LRUCache
from faststream.rabbit import RabbitBroker
from pydantic import TypeAdapter

from palette.common import failpoints
from palette.common import messages as m
from palette.common.broker import publish
from palette.common.job_document import ExportStatus, export_status
from palette.common.pricing import PricingTable, UnknownModelError
from palette.common.samplers import SeedSampling
from palette.common.seeds import SeedError
from palette.common.service_tiers import (
    JobMode,
    ServiceTier,
    UnpricedRateError,
    job_rate,
    rated_table,
    require_rate,
)
from palette.common.templates import TemplateError, TemplateSpec, analyse
from palette.scheduler import commands, waves
from palette.scheduler.dispatch import PartitionDispatch
from palette.scheduler.partitioning import SeedSummary, partition_ranges, record_estimate
from palette.scheduler.repository import Doc, SchedulerRepository
from palette.scheduler.settings import SchedulerSettings
from palette.scheduler.states import JOB_MOVES, ExportEvent, JobEvent, export_blockers, stop_event

log = structlog.get_logger("palette.scheduler")

SeedCounter = Callable[[str], Coroutine[Any, Any, SeedSummary]]
PLANS_KEPT = 1024
PLAN_CHARS_KEPT = 8_000_000
"""Characters of template text the kept plans may hold in all (a template may have 2 M)."""


SEED_SAMPLING: TypeAdapter[SeedSampling] = TypeAdapter(SeedSampling)


@dataclass(frozen=True, slots=True)
class JobPlan:
    """What a started job's partitions are made of; fixed once the job runs."""

    template: TemplateSpec
    seed_key: str
    seed_count: int
    record_estimate: int
    seed_sampling: SeedSampling = "uniform"
    service_tier: ServiceTier = ServiceTier.DEFAULT
    mode: JobMode = JobMode.ONLINE

    @property
    def chars(self) -> int:
        """Characters of the template's prompts and system texts."""
        return sum(len(step.prompt) + len(step.system or "") for step in self.template.steps)


class Scheduler(PartitionDispatch):
    """Moves jobs through their lifecycle (their partitions' attempts: ``PartitionDispatch``)."""

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
        # Bounded by template characters (a plan weighs its ``chars``) and by count.
        self._plans: LRUCache[str, JobPlan] = LRUCache(
            PLAN_CHARS_KEPT, getsizeof=lambda plan: plan.chars
        )

    @property
    def _plan_chars(self) -> int:
        """Characters of template text the kept plans hold."""
        return int(self._plans.currsize)

    async def plan(self, job_id: str) -> JobPlan | None:
        """A job's plan, read once and kept while the job is among the most recently used.

        At most ``PLANS_KEPT`` plans with ``PLAN_CHARS_KEPT`` characters of
        templates in all are kept. None for a job that is gone or not started
        yet (no seed count).
        """
        plan = self._plans.get(job_id)  # a hit makes it the most recently used
        if plan is not None:
            return plan
        job = await self.repo.job(job_id)
        if job is None or job.get("seed_count") is None or job.get("record_estimate") is None:
            return None
        plan = JobPlan(
            template=TemplateSpec.model_validate(job["template"]),
            seed_key=job["seed_key"],
            seed_count=int(job["seed_count"]),
            record_estimate=int(job["record_estimate"]),
            seed_sampling=SEED_SAMPLING.validate_python(job.get("seed_sampling") or "uniform"),
            service_tier=ServiceTier(job.get("service_tier") or "default"),
            mode=JobMode(job.get("mode") or "online"),
        )
        if job_id in self._plans:  # another message of the job read it meanwhile
            return self._plans[job_id]
        if plan.chars <= self._plans.maxsize:  # one larger than the bound is not kept
            self._plans[job_id] = plan  # the least recently used go to make room
            while len(self._plans) > PLANS_KEPT:
                self._plans.popitem()
        return plan

    # ------------------------------------------------------------ starting

    async def submit(self, msg: m.SubmitJob) -> None:
        """Create the job if new, split it into partitions and start it."""
        job = await self.repo.upsert_job(msg.job_id, commands.submitted_job(msg, m.utcnow()))
        if job["status"] == m.JobStatus.QUEUED.value and not await self._start(job):
            return
        await self.pump(msg.job_id)

    async def _start(self, job: Doc) -> bool:
        """Check a queued job, create its partitions and run it; False if it is refused."""
        job_id = job["_id"]
        template = TemplateSpec.model_validate(job["template"])
        tier = job_rate(job.get("mode") or JobMode.ONLINE, job.get("service_tier") or "default")
        try:
            analyse(template)
            require_rate(self.pricing, tier, template.models, template.steps)
            seeds = await self.count_seeds(job["seed_key"])
        except (TemplateError, UnknownModelError, UnpricedRateError, SeedError) as exc:
            await self.fail_before_start(job_id, str(exc))
            return False
        size = job.get("partition_size") or self.settings.partition_size
        ranges = partition_ranges(job["num_records"], size)
        await self.repo.create_partitions(job_id, ranges)
        if await self._move(
            job_id,
            JobEvent.START,
            seed_count=seeds.count,
            partition_size=size,
            partitions_total=len(ranges),
            planned_records=job["num_records"],
            record_estimate=record_estimate(
                template, rated_table(self.pricing, tier), seeds.largest_bytes
            ),
            slots=[None] * self.settings.window,
            started_at=m.utcnow(),
        ):
            log.info("job_started", job_id=job_id, partitions=len(ranges), seeds=seeds.count)
        return True

    async def fail_before_start(self, job_id: str, reason: str) -> None:
        """A job refused before any model call (unknown model, bad seed file)."""
        fields = {"error": reason, "finished_at": m.utcnow(), "partitions_total": 0}
        if await self._move(job_id, JobEvent.REFUSE, reason, **fields):
            log.warning("job_refused", job_id=job_id, reason=reason)

    async def _move(
        self, job_id: str, event: JobEvent, reason: str | None = None, **fields: Any
    ) -> bool:
        """Move the job by ``event`` and announce it (``JobStatusChanged``); False if it did not."""
        before = await self.repo.move(job_id, event, **fields)
        if before is None:
            return False
        status = JOB_MOVES[event].target
        await self._announce(commands.status_changed(before, status, reason))
        return True

    # ------------------------------------------------------------ stopping

    async def stop(self, job_id: str, status: m.JobStatus, reason: str) -> None:
        """Stop a job now; generators stop calling the model; it exports what it made."""
        before = await self.repo.move(
            job_id,
            stop_event(status),
            error=None if status is m.JobStatus.CANCELLED else reason,
            stop_reason=reason,
        )
        if before is None:
            return
        await publish(self.broker, m.JobStopped(job_id=job_id, status=status))
        await self.repo.stop_open_partitions(job_id)
        log.info("job_stopped", job_id=job_id, status=status.value, reason=reason)
        await self._announce(commands.status_changed(before, status, reason))
        await self.maybe_finish(job_id)

    # ----------------------------------------------------------- finishing

    async def maybe_finish(self, job_id: str) -> None:
        """Export once every partition is done, or once a stopped job is idle.

        Only once no lease of the job is open: the ledger is final then
        (``LeaseClosed`` calls again).
        """
        job = await self.repo.job(job_id)
        blockers = None if job is None else export_blockers(job)
        if job is None or blockers is None or await self.repo.open_leases(job_id):
            return
        if await self.repo.count(job_id, blockers):
            return
        asked = {"sent": False, "requested_at": m.utcnow()}
        if not await self.repo.move_export(job_id, ExportEvent.REQUEST, **asked):
            return
        await self.repo.recount_progress(job_id)
        failpoints.hit("scheduler.before_export_request")
        await self.request_export(job)

    async def request_export(self, job: Doc) -> None:
        """Ask a generator to write the dataset (idempotent), and mark it sent."""
        await publish(self.broker, commands.export_job(job))
        await self.repo.export_sent(job["_id"])

    async def resend_exports(self) -> None:
        """Send again the ExportJob of exports asked for whose publish failed.

        The export's move to ``PENDING`` comes first; a handler whose publish
        then raised (the broker away longer than a publish waits) would leave
        the job running with no export on the way, and its redelivery finds the
        export asked for already. One scheduler takes each (the
        ``requested_at`` it read must still be there).
        """
        now = m.utcnow()
        before = now - timedelta(seconds=self.settings.export_resend_seconds)
        for job in await self.repo.exports_unsent(before):
            taken = {"export.sent": False, "export.requested_at": job["export"]["requested_at"]}
            if await self.repo.set_job(job["_id"], taken, {"export.requested_at": now}):
                log.warning("export_resent", job_id=job["_id"])
                await self.request_export(job)

    async def export_completed(self, msg: m.ExportCompleted) -> None:
        """The dataset is written: a running job is now complete."""
        written = commands.written_export(msg)
        if not await self.repo.move_export(msg.job_id, ExportEvent.WRITTEN, **written):
            return
        await self.after_export(msg.job_id)

    async def after_export(self, job_id: str) -> None:
        """A running job whose export is written completes, or plans its next wave.

        A ``target: "kept"`` job short of ``num_records`` kept records plans more
        record indexes (``targets.more_records``) while ``max_generated`` allows,
        and runs them; its export is written again when they are done. One that
        ``max_generated`` stops short completes with ``short_of_target`` (the
        reason, also its ``JobStatusChanged`` reason). Safe to
        repeat: the next wave's partitions have fixed ids, and it is planned only
        from the ``planned_records`` the export counted.
        """
        job = await self.repo.job(job_id)
        if job is None or export_status(job) is not ExportStatus.DONE:
            return  # gone, or a next wave took its export over already
        more = waves.more(job) if job["status"] == m.JobStatus.RUNNING.value else 0
        if more and await self._next_wave(job, more):
            return
        short = waves.short_of_target(job)
        fields = {"finished_at": m.utcnow(), "short_of_target": short}
        if await self._move(job_id, JobEvent.EXPORTED, short, **fields):
            log.info(
                "job_completed",
                job_id=job_id,
                records=(job.get("export") or {}).get("records"),
                short_of_target=short,
            )
        else:
            await self.repo.set_job(job_id, {"finished_at": None}, {"finished_at": m.utcnow()})

    async def _next_wave(self, job: Doc, more: int) -> bool:
        """Plan ``more`` record indexes after the job's planned ones and run them.

        False when the job moved meanwhile (a stop): it ends with the export it has.
        """
        job_id, planned = job["_id"], waves.planned(job)
        first_index = int(job["partitions_total"])
        size = int(job.get("partition_size") or self.settings.partition_size)
        ranges = partition_ranges(planned + more, size, planned)
        await self.repo.create_partitions(job_id, ranges, first_index)
        export = job.get("export") or {}
        moved = await self.repo.set_job(
            job_id,
            {
                "status": m.JobStatus.RUNNING.value,
                "planned_records": planned,
                "export.status": ExportStatus.DONE.value,
            },
            waves.next_wave_fields(export, planned + more, first_index + len(ranges)),
        )
        if moved:
            log.info("job_wave", job_id=job_id, kept=waves.kept(export), planned=planned + more)
            await self.pump(job_id)
        return moved

    async def export_failed(self, msg: m.ExportFailed) -> None:
        """The export could not be written: the job fails with the reason."""
        await self.repo.move_export(msg.job_id, ExportEvent.WRITE_FAILED, error=msg.error)
        error = f"export failed: {msg.error}"
        fields = {"error": error, "finished_at": m.utcnow()}
        await self._move(msg.job_id, JobEvent.EXPORT_FAILED, msg.error, **fields)

    # ------------------------------------------------------------- restart

    async def resume(self) -> None:
        """After a restart: announce moves not announced, recount slots, re-ask leases, pump."""
        for job in await self.repo.unannounced():
            reason = job.get("stop_reason") or job.get("error") or job.get("short_of_target")
            status = m.JobStatus(job["status"])
            await self._announce(commands.status_changed(job, status, reason, known_previous=False))
        for job in await self.repo.jobs_to_resume():
            job_id = job["_id"]
            await self.repo.resync_slots(job_id, job.get("slots") or [])
            await self.repo.recount_progress(job_id)
            for part in await self.repo.reserving(job_id):
                await self._reserve(job_id, part)
            if (
                job["status"] == m.JobStatus.RUNNING.value
                and export_status(job) is ExportStatus.DONE
            ):
                await self.after_export(job_id)  # a restart between the export and what follows
            elif export_status(job) is ExportStatus.PENDING:
                await self.request_export(job)  # it may never have reached the broker
            elif job["status"] == m.JobStatus.RUNNING.value:
                await self.pump(job_id)
            else:
                await self.maybe_finish(job_id)
            log.info("job_resumed", job_id=job_id, status=job["status"])

    async def _announce(self, changed: m.JobStatusChanged) -> None:
        """Publish a move's ``JobStatusChanged`` (webhooks hear of it), then mark it announced."""
        if changed.status.is_final:
            failpoints.hit("scheduler.before_final_announce")
        await publish(self.broker, changed)
        await self.repo.announced(changed.job_id, changed.status)
