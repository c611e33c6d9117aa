"""What accounting's handlers act on, opened once per process by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from faststream.rabbit import RabbitBroker

from palette.accounting.lease_holds import LeaseHolds
from palette.accounting.preview_repository import PreviewLedger
from palette.accounting.repository import LedgerRepository
from palette.accounting.settings import AccountingSettings
from palette.accounting.webhook_sender import WebhookSender
from palette.accounting.webhook_store import WebhookStore
from palette.common.pricing import PricingTable


@dataclass(frozen=True, slots=True)
class AccountingRuntime:
    """The clients and settings of one accounting process."""

    ledgers: LedgerRepository
    """Job ledgers and leases."""
    holds: LeaseHolds
    """Leases held for reconciliation."""
    previews: PreviewLedger
    """Preview budgets and previews."""
    pricing: PricingTable
    broker: RabbitBroker
    """Where replies and events are published."""
    settings: AccountingSettings
    webhooks: WebhookStore
    """Webhooks and their deliveries."""
    sender: WebhookSender
    """Attempts the deliveries that are due."""
