"""The scheduler service: the only place that wires clients to handlers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from botocore.exceptions import ClientError
from faststream import FastStream
from faststream.rabbit import RabbitBroker

from palette.common.clients import is_missing, mongo_client, s3_client
from palette.common.metrics import job_status_gauge
from palette.common.pricing import load_pricing
from palette.common.seeds import SeedError, format_from_name, read_records
from palette.common.service import background, build_service
from palette.scheduler.handlers import HANDLERS
from palette.scheduler.lifecycle import Scheduler
from palette.scheduler.partitioning import SeedSummary, summarize_seeds
from palette.scheduler.repository import SchedulerRepository
from palette.scheduler.settings import SchedulerSettings


def create_app(settings: SchedulerSettings | None = None) -> FastStream:
    """Build the scheduler app."""
    settings = settings or SchedulerSettings()

    @asynccontextmanager
    async def open_runtime(broker: RabbitBroker) -> AsyncIterator[Scheduler]:
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
                async with background(scheduler.resume_paused_forever()):
                    yield scheduler
        finally:
            await client.close()

    return build_service(
        "scheduler",
        settings,
        HANDLERS,
        open_runtime,
        prefetch=settings.prefetch,
        on_started=Scheduler.resume,
    )
