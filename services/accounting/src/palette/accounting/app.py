"""The accounting service: the only place that wires clients to handlers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from faststream import FastStream
from faststream.rabbit import RabbitBroker

from palette.accounting import handlers, preview_handlers, purge, webhook_handlers
from palette.accounting.invocation_reader import InvocationLogReader
from palette.accounting.preview_repository import PreviewLedger
from palette.accounting.reconciler import Reconciler
from palette.accounting.repository import LedgerRepository
from palette.accounting.settings import AccountingSettings
from palette.accounting.webhook_sender import WebhookSender, make_client
from palette.accounting.webhook_store import WebhookStore
from palette.common.clients import mongo_client, s3_client
from palette.common.pricing import load_pricing
from palette.common.service import build_service
from palette.common.topology import Queues, QueueSpec

HANDLERS: dict[QueueSpec, Callable[..., Any]] = {
    Queues.RESERVE_BUDGET: handlers.reserve_budget,
    Queues.ACC_RECORDS: handlers.records_generated,
    Queues.ACC_PARTITION_COMPLETED: handlers.partition_completed,
    Queues.ACC_PARTITION_FAILED: handlers.partition_failed,
    Queues.ACC_JOB_DELETED: purge.job_deleted,
    Queues.RESERVE_PREVIEW_BUDGET: preview_handlers.reserve_preview_budget,
    Queues.ACC_PREVIEW_COMPLETED: preview_handlers.preview_completed,
    Queues.ACC_JOB_STATUS_CHANGED: webhook_handlers.job_status_changed,
    Queues.ACC_BUDGET_THRESHOLD: webhook_handlers.budget_threshold_reached,
    Queues.SEND_TEST_WEBHOOK: webhook_handlers.send_test_webhook,
    Queues.RESEND_WEBHOOK: webhook_handlers.resend_webhook_delivery,
}


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


def create_app(settings: AccountingSettings | None = None) -> FastStream:
    """Build the accounting app."""
    settings = settings or AccountingSettings()

    @asynccontextmanager
    async def resources(broker: RabbitBroker) -> AsyncIterator[Mapping[str, Any]]:
        client = mongo_client(settings)
        http = make_client(settings)
        tasks: list[asyncio.Task[None]] = []
        try:
            repo = LedgerRepository(client, settings.mongo_db)
            await repo.create_indexes()
            preview_ledger = PreviewLedger(client, settings.mongo_db)
            await preview_ledger.create_indexes()
            pricing = load_pricing(settings.pricing_file)
            reconciler = Reconciler(
                repo,
                invocation_log_reader(settings),
                pricing,
                broker,
                settings.reconcile_interval_seconds,
            )
            tasks.append(asyncio.create_task(reconciler.run_forever()))
            tasks.append(
                asyncio.create_task(
                    preview_handlers.release_expired_forever(
                        preview_ledger, settings.preview_sweep_seconds
                    )
                )
            )
            webhook_store = WebhookStore(client[settings.mongo_db])
            await webhook_store.create_indexes(settings.webhook_delivery_retention_days)
            webhook_sender = WebhookSender(webhook_store, settings, http)
            tasks.append(asyncio.create_task(webhook_sender.run_forever()))
            yield {
                "repo": repo,
                "previews": preview_ledger,
                "pricing": pricing,
                "broker": broker,
                "settings": settings,
                "webhook_store": webhook_store,
                "webhook_sender": webhook_sender,
            }
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await http.aclose()
            await client.close()

    return build_service("accounting", settings, HANDLERS, resources, prefetch=settings.prefetch)
