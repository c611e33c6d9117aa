"""The scheduler service: the only place that wires clients to handlers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from botocore.exceptions import ClientError
from faststream import FastStream
from faststream.rabbit import RabbitBroker

from palette.common.clients import is_missing, mongo_client, s3_client
from palette.common.metrics import job_status_gauge
from palette.common.pricing import load_pricing
from palette.common.seeds import SeedError, format_from_name, read_records
from palette.common.service import build_service
from palette.common.topology import Queues, QueueSpec
from palette.scheduler import handlers, purge
from palette.scheduler.lifecycle import Scheduler
from palette.scheduler.partitioning import SeedSummary, summarize_seeds
from palette.scheduler.repository import SchedulerRepository
from palette.scheduler.settings import SchedulerSettings

HANDLERS: dict[QueueSpec, Callable[..., Any]] = {
    Queues.SUBMIT_JOB: handlers.submit_job,
    Queues.CANCEL_JOB: handlers.cancel_job,
    Queues.SCHED_BUDGET_RESERVED: handlers.budget_reserved,
    Queues.SCHED_BUDGET_DENIED: handlers.budget_denied,
    Queues.SCHED_BUDGET_EXCEEDED: handlers.budget_exceeded,
    Queues.SCHED_LEASE_CLOSED: handlers.lease_closed,
    Queues.SCHED_RECORDS: handlers.records_generated,
    Queues.SCHED_PARTITION_COMPLETED: handlers.partition_completed,
    Queues.SCHED_PARTITION_FAILED: handlers.partition_failed,
    Queues.SCHED_EXPORT_COMPLETED: handlers.export_completed,
    Queues.SCHED_EXPORT_FAILED: handlers.export_failed,
    Queues.DELETE_JOB: purge.delete_job,
}


def create_app(settings: SchedulerSettings | None = None) -> FastStream:
    """Build the scheduler app."""
    settings = settings or SchedulerSettings()

    @asynccontextmanager
    async def resources(broker: RabbitBroker) -> AsyncIterator[Mapping[str, Any]]:
        client = mongo_client(settings)
        s3 = s3_client(settings)

        def count_sync(key: str) -> SeedSummary:
            try:
                body = s3.get_object(Bucket=settings.s3_bucket, Key=key)["Body"]
            except ClientError as exc:
                if not is_missing(exc):
                    raise
                raise SeedError(f"seed file {key!r} does not exist") from exc
            with body:
                return summarize_seeds(read_records(body, format_from_name(key)))  # type: ignore[arg-type]

        async def count_seeds(key: str) -> SeedSummary:
            return await asyncio.to_thread(count_sync, key)

        try:
            repo = SchedulerRepository(client, settings.mongo_db)
            await repo.create_indexes()
            scheduler = Scheduler(
                repo, broker, load_pricing(settings.pricing_file), settings, count_seeds
            )
            # palette_jobs{status}, counted at scrape time (only when metrics are served).
            gauge = (
                job_status_gauge(client[settings.mongo_db]["jobs"])
                if settings.metrics_port
                else contextlib.nullcontext()
            )
            with gauge:
                yield {"scheduler": scheduler}
        finally:
            await client.close()

    app = build_service("scheduler", settings, HANDLERS, resources, prefetch=settings.prefetch)

    @app.after_startup
    async def _resume() -> None:
        scheduler: Scheduler = app.context.get("scheduler")
        await scheduler.resume()

    return app
