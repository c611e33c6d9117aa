"""The accounting service: the only place that wires clients to handlers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from typing import Any

from faststream import FastStream
from faststream.rabbit import RabbitBroker

from palette.accounting import handlers, purge
from palette.accounting.repository import LedgerRepository
from palette.accounting.settings import AccountingSettings
from palette.common.clients import mongo_client
from palette.common.pricing import load_pricing
from palette.common.service import build_service
from palette.common.topology import Queues, QueueSpec

HANDLERS: dict[QueueSpec, Callable[..., Any]] = {
    Queues.RESERVE_BUDGET: handlers.reserve_budget,
    Queues.ACC_RECORDS: handlers.records_generated,
    Queues.ACC_PARTITION_COMPLETED: handlers.partition_completed,
    Queues.ACC_PARTITION_FAILED: handlers.partition_failed,
    Queues.ACC_JOB_DELETED: purge.job_deleted,
}


def create_app(settings: AccountingSettings | None = None) -> FastStream:
    """Build the accounting app."""
    settings = settings or AccountingSettings()

    @asynccontextmanager
    async def resources(broker: RabbitBroker) -> AsyncIterator[Mapping[str, Any]]:
        client = mongo_client(settings)
        try:
            repo = LedgerRepository(client, settings.mongo_db)
            await repo.create_indexes()
            yield {"repo": repo, "pricing": load_pricing(settings.pricing_file), "broker": broker}
        finally:
            await client.close()

    return build_service("accounting", settings, HANDLERS, resources, prefetch=settings.prefetch)
