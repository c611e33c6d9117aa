"""The generator service: the only place that wires clients to handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from faststream import FastStream
from faststream.rabbit import RabbitBroker

from palette.common.clients import mongo_client, s3_client
from palette.common.pricing import load_pricing
from palette.common.quotas import load_quotas
from palette.common.service import build_service
from palette.common.structured_support import load_support
from palette.generator.batch_store import BatchClient, BatchStore
from palette.generator.bedrock import open_bedrock
from palette.generator.claims import Claims
from palette.generator.handlers import HANDLERS
from palette.generator.quota_shares import QuotaBoard, QuotaShares
from palette.generator.rendering import Renderer
from palette.generator.repository import JobsRepository, LeasesRepository
from palette.generator.runtime import GeneratorRuntime
from palette.generator.settings import GeneratorSettings
from palette.generator.slots import CallSlots
from palette.generator.stops import StopRegistry
from palette.generator.storage import Storage

SERVICE = "generator"


@asynccontextmanager
async def open_runtime(
    settings: GeneratorSettings, broker: RabbitBroker
) -> AsyncIterator[GeneratorRuntime]:
    """Open every client the handlers use; close them on the way out."""
    pricing = load_pricing(settings.pricing_file)
    mongo = mongo_client(settings)
    db = mongo[settings.mongo_db]
    claims = Claims(db, settings.claim_ttl_seconds, settings.claim_retention_seconds)
    renderer = Renderer(
        settings.render_seconds, settings.render_loop_seconds, settings.render_processes
    )
    shares = QuotaShares(db)
    batches = BatchStore(db)
    quotas = QuotaBoard(
        load_quotas(settings.quotas_file) if settings.quota_table else None,
        settings.aws_region,
        settings.quota_target,
        shares,
        settings.quota_sync_seconds,
    )
    try:
        await claims.create_indexes()
        await shares.create_indexes()
        await batches.create_indexes()
        async with open_bedrock(settings) as models:
            s3 = s3_client(settings)
            yield GeneratorRuntime(
                settings=settings,
                storage=Storage(s3, settings.s3_bucket),
                batches=batches,
                batch_client=BatchClient(settings, s3, settings.s3_bucket),
                models=models,
                jobs=JobsRepository(db),
                leases=LeasesRepository(db),
                stops=StopRegistry(),
                pricing=pricing,
                call_slots=CallSlots(settings.concurrency),
                claims=claims,
                renderer=renderer,
                broker=broker,
                quotas=quotas,
                structured=load_support(settings.structured_output_file),
            )
    finally:
        await quotas.close()
        await renderer.close()
        await mongo.close()


def drain(runtime: GeneratorRuntime) -> None:
    """At shutdown: attempts start no new record and end as soon as they can."""
    runtime.draining = True


def create_app(settings: GeneratorSettings | None = None) -> FastStream:
    """Build the generator app (nothing connects until it runs)."""
    conf = settings or GeneratorSettings()

    def runtime(broker: RabbitBroker) -> AbstractAsyncContextManager[GeneratorRuntime]:
        return open_runtime(conf, broker)

    return build_service(
        SERVICE,
        conf,
        HANDLERS,
        runtime,
        prefetch=conf.prefetch,
        on_stopping=drain,
        details={"concurrency": conf.concurrency},
    )
