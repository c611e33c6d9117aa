"""What handlers need, opened once per process by the app's lifespan."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from faststream.rabbit import RabbitBroker

from palette.common.broker import publish
from palette.common.messages import Message
from palette.common.pricing import PricingTable
from palette.common.structured_support import StructuredSupport, load_support
from palette.generator.batch_store import BatchClient, BatchStore
from palette.generator.bedrock import ModelCaller
from palette.generator.claims import Claims
from palette.generator.quota_shares import QuotaBoard
from palette.generator.rendering import Renderer
from palette.generator.repository import JobsRepository, LeasesRepository
from palette.generator.settings import GeneratorSettings
from palette.generator.slots import CallSlots
from palette.generator.stops import StopRegistry
from palette.generator.storage import Storage

Publish = Callable[[Message], Awaitable[None]]
"""Publishes one message on its route (``palette.common.broker.publish``)."""


@dataclass(slots=True)
class GeneratorRuntime:
    """The clients and process-wide state of one generator process."""

    settings: GeneratorSettings
    storage: Storage
    models: ModelCaller
    jobs: JobsRepository
    leases: LeasesRepository
    stops: StopRegistry
    pricing: PricingTable
    call_slots: CallSlots
    """Process-wide bound on concurrent model calls (oldest attempt first)."""
    claims: Claims
    """Exclusive claims on leases (one generator spends a lease at a time)."""
    renderer: Renderer
    """Renders prompts on the loop when fast, else in a render process."""
    broker: RabbitBroker
    """Where events and reports are published (``publish``)."""
    quotas: QuotaBoard = field(
        default_factory=lambda: QuotaBoard(None, "us-east-1", 1.0, None, 1.0)
    )
    """Every model's quota bucket and the shares of the quotas (default: all unknown)."""
    batches: BatchStore | None = None
    """Batch inference jobs of partitions (``batch_run``); None: batch mode not served."""
    batch_client: BatchClient | None = None
    """S3 and Bedrock control-plane calls of batch jobs."""
    structured: StructuredSupport = field(default_factory=lambda: load_support(None))
    """How each model answers a schema (``structured_output.json``)."""
    draining: bool = False
    """Set at shutdown: attempts start no new record and end as soon as they can."""

    async def publish(self, message: Message) -> None:
        """Publish one message on its route (a ``Publish``)."""
        await publish(self.broker, message)

    def backoff(self, attempt: int) -> float:
        """Delay before retry ``attempt + 1``: exponential with jitter."""
        ceiling = min(self.settings.backoff_max, self.settings.backoff_base * 2.0 ** (attempt - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 (jitter, not crypto)
