"""Webhook events: job events become deliveries; test-sends, re-sends (called by handlers.py).

A job event becomes one delivery per webhook of the job's owner subscribed to
its type, each written once (``webhook_store.add``); the sender
(``webhook_sender``) attempts them. The message is acknowledged only after the
deliveries are written, so an event is never lost between the broker and the
schedule, and a redelivered event makes no second delivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import structlog

from palette.accounting import webhook_policy as policy
from palette.accounting.settings import AccountingSettings
from palette.accounting.webhook_sender import WebhookSender
from palette.accounting.webhook_store import Doc, WebhookStore
from palette.common.messages import (
    BudgetThresholdReached,
    JobStatusChanged,
    ResendWebhookDelivery,
    SendTestWebhook,
    utcnow,
)
from palette.common.money import usd_string
from palette.common.webhooks import STATUS_EVENTS, TEST_EVENT, WebhookEvent, event_id

log = structlog.get_logger("palette.accounting.webhooks")


async def _deliver(
    store: WebhookStore,
    sender: WebhookSender,
    settings: AccountingSettings,
    webhooks: list[Doc],
    event: str,
    the_id: str,
    occurred_at: datetime,
    data: Mapping[str, Any],
    job_id: str | None,
) -> None:
    payload = policy.body(event, occurred_at, data)
    made = 0
    for webhook in webhooks:
        doc = policy.delivery(
            webhook,
            the_id,
            event,
            payload,
            job_id=job_id,
            now=utcnow(),
            retry_for_seconds=settings.webhook_retry_for_seconds,
        )
        made += await store.add(doc)
    if made:
        sender.wake()
    log.info("webhook_event", event_id=the_id, event_type=event, job_id=job_id, deliveries=made)


async def _job_event(
    store: WebhookStore,
    sender: WebhookSender,
    settings: AccountingSettings,
    job_id: str,
    owner: str | None,
    event: WebhookEvent,
    the_id: str,
    occurred_at: datetime,
    data: Mapping[str, Any],
) -> None:
    owner = owner or await store.job_owner(job_id)
    if not owner:
        return
    webhooks = await store.subscribers(owner, event.value)
    if webhooks:
        await _deliver(
            store, sender, settings, webhooks, event.value, the_id, occurred_at, data, job_id
        )


async def job_status_changed(
    msg: JobStatusChanged,
    store: WebhookStore,
    sender: WebhookSender,
    settings: AccountingSettings,
) -> None:
    """A job ended: its owner's webhooks of that event get a delivery each."""
    event = STATUS_EVENTS.get(msg.status)
    if event is None:
        return
    data = {
        "job_id": msg.job_id,
        "status": msg.status.value,
        "previous": msg.previous.value if msg.previous else None,
        "reason": msg.reason,
    }
    the_id = event_id(msg.job_id, event)
    await _job_event(
        store, sender, settings, msg.job_id, msg.owner, event, the_id, msg.occurred_at, data
    )


async def budget_threshold_reached(
    msg: BudgetThresholdReached,
    store: WebhookStore,
    sender: WebhookSender,
    settings: AccountingSettings,
) -> None:
    """A job spent 75 % or 90 % of its budget: its owner's webhooks of that event hear it."""
    event = WebhookEvent.JOB_BUDGET_THRESHOLD
    data = {
        "job_id": msg.job_id,
        "threshold_percent": msg.threshold,
        "budget_usd": usd_string(msg.budget),
        "spent_usd": usd_string(msg.spent),
    }
    the_id = event_id(msg.job_id, event, msg.threshold)
    await _job_event(
        store, sender, settings, msg.job_id, None, event, the_id, msg.occurred_at, data
    )


async def send_test_webhook(
    msg: SendTestWebhook,
    store: WebhookStore,
    sender: WebhookSender,
    settings: AccountingSettings,
) -> None:
    """Send a test event to one webhook (whatever it subscribes to)."""
    webhook = await store.webhook(msg.webhook_id)
    if webhook is None or webhook.get("owner") != msg.owner:
        log.info("webhook_test_dropped", webhook_id=msg.webhook_id, reason="no such webhook")
        return
    data = policy.sample_data(msg.webhook_id)
    await _deliver(
        store, sender, settings, [webhook], TEST_EVENT, msg.event_id, msg.occurred_at, data, None
    )


async def resend_webhook_delivery(
    msg: ResendWebhookDelivery,
    store: WebhookStore,
    sender: WebhookSender,
    settings: AccountingSettings,
) -> None:
    """Deliver an event to a webhook again: due now, retried for another bounded time."""
    now = utcnow()
    delivery_id = f"{msg.webhook_id}:{msg.event_id}"
    resent = await store.resend(
        delivery_id,
        msg.owner,
        msg.message_id,
        now,
        now + timedelta(seconds=settings.webhook_retry_for_seconds),
    )
    if resent:
        sender.wake()
    log.info("webhook_resend", delivery_id=delivery_id, applied=resent)
