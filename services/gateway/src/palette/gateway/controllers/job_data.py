"""``/jobs/{id}/dashboard``, ``/events`` and ``/download``: watching a job and getting its data."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Annotated, Any, Literal

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import FromPath, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from palette.common.job_document import ExportStatus, export_status, job_settled
from palette.common.keys import snapshot_key
from palette.common.messages import ExportSnapshot, JobStatus, OutputFormat, utcnow
from palette.common.quota_view import QuotaUse
from palette.gateway.controllers.jobs import ledger_of, owned_job
from palette.gateway.dashboard import build_dashboard, step_models
from palette.gateway.job_views import job_view
from palette.gateway.openapi import problems
from palette.gateway.ports import GatewayRuntime
from palette.gateway.problems import Problem, field_error
from palette.gateway.schemas import Dashboard, DownloadLink

SNAPSHOT_POLL_SECONDS = 0.25


async def dashboard_of(runtime: GatewayRuntime, job: dict[str, Any]) -> Dashboard:
    """The dashboard of a job, feeding the recent-rate samples."""
    ledger = await ledger_of(runtime, job)
    job_id = str(job["_id"])
    done = int(job.get("records_done") or 0)
    if JobStatus(job["status"]) is JobStatus.RUNNING:
        runtime.rates.observe(job_id, done)
        rate = runtime.rates.recent_rate(job_id)
    else:
        runtime.rates.forget(job_id)
        rate = None
    quotas: list[QuotaUse] = []
    if JobStatus(job["status"]) is JobStatus.RUNNING:
        models = sorted(set(step_models(job).values()))
        quotas = await runtime.repository.quota_uses(models, runtime.settings.aws_region)
    return build_dashboard(job, ledger, rate, utcnow(), quotas)


async def progress_events(
    runtime: GatewayRuntime, owner: str, job: dict[str, Any]
) -> AsyncIterator[ServerSentEventMessage]:
    """``progress`` events (a dashboard) on every change, then one ``end`` event (the job)."""
    settings = runtime.settings
    job_id = str(job["_id"])
    last: str | None = None
    sent_at = time.monotonic()
    sequence = 0
    while True:
        dashboard = (await dashboard_of(runtime, job)).model_dump_json()
        if dashboard != last:
            sequence += 1
            yield ServerSentEventMessage(data=dashboard, event="progress", id=sequence)
            last, sent_at = dashboard, time.monotonic()
        elif time.monotonic() - sent_at >= settings.events_heartbeat_seconds:
            yield ServerSentEventMessage(comment="keep-alive")
            sent_at = time.monotonic()
        if job_settled(job):
            view = job_view(job, await ledger_of(runtime, job))
            yield ServerSentEventMessage(data=view.model_dump_json(), event="end", id=sequence + 1)
            return
        await asyncio.sleep(settings.events_interval_seconds)
        current = await runtime.repository.find_job(job_id, owner)
        if current is None:  # deleted meanwhile
            yield ServerSentEventMessage(data='{"status": "DELETED"}', event="end")
            return
        job = current


FILE_HELP = (
    "`rejected`: the records the job's keep_if or dedup left out (and those whose "
    "schema'd step never answered valid output: `invalid_output`), as JSONL with "
    "`rejected_reason` and `rejected_detail` (once the dataset is written)."
)


class JobDataController(Controller):
    """A job's live progress and its data; another user's job answers 404."""

    path = "/jobs/{job_id:str}"
    tags = ["jobs"]

    @get(
        "/dashboard",
        operation_id="getJobDashboard",
        summary="Progress, cost by model and step, budget, tokens and timing",
        responses=problems(404),
    )
    async def dashboard(
        self,
        job_id: FromPath[str],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
    ) -> Dashboard:
        """Everything a dashboard page shows; the ETA follows the recent rate."""
        return await dashboard_of(runtime, await owned_job(runtime, owner, job_id))

    @get(
        "/events",
        operation_id="streamJobEvents",
        summary="Live progress as server-sent events until the job ends",
        media_type="text/event-stream",
        response_description="`progress` events (a Dashboard as JSON), then one `end` event "
        "(the JobView)",
        responses=problems(404),
    )
    async def events(
        self,
        job_id: FromPath[str],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
    ) -> ServerSentEvent:
        """Server-sent events of a job until it has ended.

        ``event: progress`` (the dashboard as JSON) whenever it changes, a
        keep-alive comment when idle, and a final ``event: end`` with the
        finished job (its export included).
        """
        job = await owned_job(runtime, owner, job_id)
        return ServerSentEvent(progress_events(runtime, owner, job))

    @get(
        "/download",
        operation_id="getJobDownload",
        summary="A presigned URL to the dataset, or to a partial export of a running job",
        responses=problems(404, 409),
    )
    async def download(
        self,
        job_id: FromPath[str],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
        format: Annotated[
            OutputFormat | None,
            QueryParameter(description="Format of the file; the job's own format when omitted."),
        ] = None,
        file: Annotated[Literal["dataset", "rejected"], QueryParameter(description=FILE_HELP)] = (
            "dataset"
        ),
    ) -> DownloadLink:
        """A presigned GET (valid ``download_url_seconds``, one hour) of the job's data.

        The export once written, in the job's format; otherwise a snapshot of
        what is done so far, written on request (a running job's partial
        export, or a finished job in another format). 409 while a job has no
        records yet. ``file=rejected``: the rejected records beside the export.
        """
        job = await owned_job(runtime, owner, job_id)
        if file == "rejected":
            return await _rejected_link(runtime, job)
        settings = runtime.settings
        fmt = format or OutputFormat(job["output_format"])
        export = job.get("export") or {}
        done = int(job.get("records_done") or 0)
        records: int | None = None
        exported_as = export.get("format") or job["output_format"]
        written = export_status(job) is ExportStatus.DONE
        if written and exported_as == fmt.value:
            key, partial, records = str(export["key"]), False, int(export.get("records") or 0)
        elif done == 0 and not written:
            raise Problem(
                409,
                f"job {job_id!r} has no records yet; nothing to download",
                errors=[field_error("job_id", "no records yet")],
                headers={"Retry-After": "5"},
            )
        else:
            tag = "final" if job_settled(job) else f"{done:010d}"
            key, partial = snapshot_key(job_id, tag, fmt), tag != "final"
            await self._snapshot(runtime, job_id, tag, fmt, key)
        size = await runtime.seeds.size(key)
        if size is None:
            raise Problem(
                409,
                f"the data of job {job_id!r} is not available",
                errors=[field_error("job_id", "the file is missing")],
            )
        name = f"{job_id}{'-partial' if partial else ''}.{fmt.value}"
        return DownloadLink(
            url=runtime.seeds.presign_get(key, name, settings.download_url_seconds),
            expires_at=utcnow() + timedelta(seconds=settings.download_url_seconds),
            key=key,
            format=fmt,
            partial=partial,
            bytes=size,
            records=records,
        )

    @staticmethod
    async def _snapshot(
        runtime: GatewayRuntime, job_id: str, tag: str, fmt: OutputFormat, key: str
    ) -> None:
        """Ask a generator for the snapshot unless it exists, and wait until it does."""
        if await runtime.seeds.size(key) is not None:
            return
        message_id = f"snapshot-{job_id}-{tag}-{fmt.value}"
        await runtime.publisher.publish(
            ExportSnapshot(message_id=message_id, job_id=job_id, output_format=fmt, tag=tag)
        )
        deadline = time.monotonic() + runtime.settings.snapshot_timeout_seconds
        while await runtime.seeds.size(key) is None:
            if time.monotonic() > deadline:
                raise Problem(
                    503,
                    "the partial export is still being written; try again shortly",
                    headers={"Retry-After": "5"},
                )
            await asyncio.sleep(SNAPSHOT_POLL_SECONDS)


async def _rejected_link(runtime: GatewayRuntime, job: dict[str, Any]) -> DownloadLink:
    """The presigned GET of a written export's rejected records (409 when there is none)."""
    export = job.get("export") or {}
    key = export.get("rejected_key") if export_status(job) is ExportStatus.DONE else None
    size = await runtime.seeds.size(key) if key else None
    if key is None or size is None:
        raise Problem(
            409,
            f"job {job['_id']!r} has no rejected records file: it has no keep_if or dedup, "
            "or its dataset is not written yet",
            errors=[field_error("file", "no rejected records file")],
        )
    seconds = runtime.settings.download_url_seconds
    return DownloadLink(
        url=runtime.seeds.presign_get(key, f"{job['_id']}-rejected.jsonl", seconds),
        expires_at=utcnow() + timedelta(seconds=seconds),
        key=key,
        format=OutputFormat.JSONL,
        partial=False,
        bytes=size,
        records=int(export.get("rejected") or 0),
    )
