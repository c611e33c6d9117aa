"""Wiring: the broker, its subscriptions, and the clients opened in the lifespan."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from faststream import FastStream
from faststream.rabbit import QueueType, RabbitBroker, RabbitQueue

from palette.common.broker import declare_topology, make_broker
from palette.common.clients import mongo_client, s3_client
from palette.common.pricing import load_pricing
from palette.common.topology import BROADCAST, Queues
from palette.generator import handlers, preview, purge, snapshot
from palette.generator.bedrock import open_bedrock
from palette.generator.claims import Claims
from palette.generator.rendering import Renderer
from palette.generator.repository import JobsRepository, LeasesRepository
from palette.generator.runtime import CONTEXT_KEY, Runtime
from palette.generator.settings import GeneratorSettings
from palette.generator.slots import CallSlots
from palette.generator.stops import StopRegistry
from palette.generator.storage import Storage

log = structlog.get_logger("palette.generator")

SERVICE = "generator"
CONSUMED = (
    Queues.GENERATE_PARTITION,
    Queues.EXPORT_JOB,
    Queues.EXPORT_SNAPSHOT,
    Queues.GEN_JOB_DELETED,
    Queues.PREVIEW_RECORD,
)


def stop_queue() -> RabbitQueue:
    """This process's own queue on the broadcast exchange (gone when it disconnects)."""
    return RabbitQueue(
        f"generator.job-stopped.{uuid.uuid4().hex}",
        queue_type=QueueType.CLASSIC,
        durable=False,
        exclusive=True,
        auto_delete=True,
    )


def build_broker(settings: GeneratorSettings) -> RabbitBroker:
    """The broker with every generator subscription."""
    broker = make_broker(
        settings.rabbitmq_url,
        queues=CONSUMED,
        prefetch=settings.prefetch,
        logger=structlog.get_logger("faststream"),
    )
    gen, export = Queues.GENERATE_PARTITION, Queues.EXPORT_JOB
    broker.subscriber(gen.queue(), exchange=gen.exchange)(handlers.generate_partition)
    broker.subscriber(export.queue(), exchange=export.exchange)(handlers.export_job)
    broker.subscriber(stop_queue(), exchange=BROADCAST)(handlers.job_stopped)
    for spec, handler in (
        (Queues.EXPORT_SNAPSHOT, snapshot.export_snapshot),
        (Queues.GEN_JOB_DELETED, purge.job_deleted),
        (Queues.PREVIEW_RECORD, preview.preview_record),
    ):
        broker.subscriber(spec.queue(), exchange=spec.exchange)(handler)
    return broker


@asynccontextmanager
async def open_runtime(settings: GeneratorSettings) -> AsyncIterator[Runtime]:
    """Open every client the handlers use; close them on the way out."""
    pricing = load_pricing(settings.pricing_file)
    mongo = mongo_client(settings)
    db = mongo[settings.mongo_db]
    claims = Claims(db, settings.claim_ttl_seconds, settings.claim_retention_seconds)
    renderer = Renderer(
        settings.render_seconds, settings.render_loop_seconds, settings.render_processes
    )
    try:
        await claims.create_indexes()
        async with open_bedrock(settings) as models:
            yield Runtime(
                settings=settings,
                storage=Storage(s3_client(settings), settings.s3_bucket),
                models=models,
                jobs=JobsRepository(db),
                leases=LeasesRepository(db),
                stops=StopRegistry(),
                pricing=pricing,
                call_slots=CallSlots(settings.concurrency),
                claims=claims,
                renderer=renderer,
            )
    finally:
        await renderer.close()
        await mongo.close()


def build_app(settings: GeneratorSettings | None = None) -> FastStream:
    """The generator application (nothing connects until it runs)."""
    settings = settings or GeneratorSettings()
    broker = build_broker(settings)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        async with open_runtime(settings) as runtime:
            app.context.set_global(CONTEXT_KEY, runtime)
            try:
                yield
            finally:
                app.context.reset_global(CONTEXT_KEY)

    async def declare() -> None:
        await broker.connect()
        await declare_topology(broker)

    def drain() -> None:
        runtime = app.context.get(CONTEXT_KEY)
        if isinstance(runtime, Runtime):
            runtime.draining = True
        log.info("service_stopping", service=SERVICE)

    def started() -> None:
        log.info(
            "service_started",
            service=SERVICE,
            queues=[spec.name for spec in CONSUMED],
            concurrency=settings.concurrency,
            prefetch=settings.prefetch,
        )

    app = FastStream(
        broker,
        lifespan=lifespan,
        logger=structlog.get_logger("faststream"),
        on_startup=[declare],
        after_startup=[started],
        on_shutdown=[drain],
    )
    return app
