"""The accounting service: the only place that wires clients to handlers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from faststream import FastStream
from faststream.rabbit import RabbitBroker

from palette.accounting.handlers import HANDLERS
from palette.accounting.invocation_reader import InvocationLogReader
from palette.accounting.lease_batches import LeaseBatches
from palette.accounting.lease_holds import LeaseHolds
from palette.accounting.preview_repository import PreviewLedger
from palette.accounting.reconciler import Reconciler
from palette.accounting.repository import LedgerRepository
from palette.accounting.runtime import AccountingRuntime
from palette.accounting.settings import AccountingSettings
from palette.accounting.webhook_sender import WebhookSender, make_client
from palette.accounting.webhook_store import WebhookStore
from palette.common.batch_jobs import BatchControl
from palette.common.clients import mongo_client, s3_client
from palette.common.messages import utcnow
from palette.common.pricing import load_pricing
from palette.common.service import background, build_service

log = structlog.get_logger("palette.accounting.previews")


def invocation_log_reader(settings: AccountingSettings) -> InvocationLogReader | None:
    """The reader of the model invocation logs, or None when none is configured."""
    if not settings.invocation_log_bucket:
        return None
    return InvocationLogReader(
        s3_client(settings),
        settings.invocation_log_bucket,
        settings.invocation_log_prefix,
        settings.aws_region,
    )


def batch_control(settings: AccountingSettings) -> BatchControl:
    """Following batch inference jobs (of lost generators' leases) in the data bucket."""
    return BatchControl(
        s3_client(settings), settings.s3_bucket, settings.bedrock_endpoint_url, settings.aws_region
    )


async def release_expired_forever(previews: PreviewLedger, interval: float) -> None:
    """Release, every ``interval`` seconds, the preview reservations past their expiry."""
    while True:
        try:
            released = await previews.expire_due(utcnow())
        except Exception:  # the database may be away for a while: try again next time
            log.exception("preview_expiry_failed")
        else:
            if released:
                log.info("preview_reservations_released", previews=released)
        await asyncio.sleep(interval)


def create_app(settings: AccountingSettings | None = None) -> FastStream:
    """Build the accounting app."""
    settings = settings or AccountingSettings()

    @asynccontextmanager
    async def open_runtime(broker: RabbitBroker) -> AsyncIterator[AccountingRuntime]:
        client = mongo_client(settings)
        http = make_client(settings)
        try:
            ledgers = LedgerRepository(client, settings.mongo_db)
            await ledgers.create_indexes()
            previews = PreviewLedger(client, settings.mongo_db)
            await previews.create_indexes()
            holds = LeaseHolds(ledgers)
            pricing = load_pricing(settings.pricing_file)
            reconciler = Reconciler(
                holds,
                invocation_log_reader(settings),
                pricing,
                broker,
                settings.reconcile_interval_seconds,
                LeaseBatches(client[settings.mongo_db], batch_control(settings), pricing),
            )
            webhooks = WebhookStore(client[settings.mongo_db])
            await webhooks.create_indexes(settings.webhook_delivery_retention_days)
            sender = WebhookSender(webhooks, settings, http)
            async with background(
                reconciler.run_forever(),
                release_expired_forever(previews, settings.preview_sweep_seconds),
                sender.run_forever(),
            ):
                yield AccountingRuntime(
                    ledgers, holds, previews, pricing, broker, settings, webhooks, sender
                )
        finally:
            await http.aclose()
            await client.close()

    return build_service("accounting", settings, HANDLERS, open_runtime, prefetch=settings.prefetch)
