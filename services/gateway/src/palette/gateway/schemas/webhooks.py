"""Bodies of ``/webhooks``: endpoints that hear of a user's job events, and their deliveries."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field, field_validator

from palette.common.webhooks import MAX_URL_CHARS, WebhookEvent
from palette.gateway.schemas.base import Cursor, Reply, Request


class CreateWebhook(Request):
    """A new webhook: where to POST, and which events."""

    url: str = Field(
        min_length=1,
        max_length=MAX_URL_CHARS,
        description="An https URL whose host resolves to public addresses only (no loopback, "
        "private, link-local, multicast or cloud metadata address). Redirects are not followed.",
    )
    events: list[WebhookEvent] = Field(
        default_factory=lambda: list(WebhookEvent),
        min_length=1,
        max_length=len(WebhookEvent),
        description="The events to deliver; every event type by default. "
        "`job.budget_threshold` is sent when a job has spent 75 % and 90 % of its budget.",
    )
    description: str | None = Field(None, max_length=200, description="A note for yourself.")

    @field_validator("events")
    @classmethod
    def _once_each(cls, value: list[WebhookEvent]) -> list[WebhookEvent]:
        return list(dict.fromkeys(value))


class WebhookView(Reply):
    """A webhook (its secret is shown only when it is created)."""

    id: str
    url: str
    events: list[WebhookEvent]
    description: str | None
    created_at: datetime


class WebhookCreated(WebhookView):
    """Answer of ``POST /webhooks``: the webhook and its signing secret, shown this once."""

    secret: str = Field(
        description="The Standard Webhooks signing secret (`whsec_...`): verify each delivery's "
        "`webhook-signature` with it (any Standard Webhooks library does). Shown only now."
    )


class WebhookList(Reply):
    """The caller's webhooks, oldest first."""

    items: list[WebhookView]


class DeliveryStatus(StrEnum):
    """Where a delivery is: still being tried, received (2xx), or given up."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


class DeliveryAttempt(Reply):
    """One attempt of a delivery."""

    attempt: int = Field(description="1 for the first attempt; re-sends go on counting.")
    at: datetime
    status_code: int | None = Field(description="The receiver's HTTP status; null: no answer.")
    latency_ms: int | None = Field(description="Time to the answer (or to the error).")
    error: str | None = Field(description="Why the attempt failed; null when it delivered.")


class DeliveryView(Reply):
    """One event sent to one webhook, with every attempt."""

    id: str = Field(description="The event's id, sent as `webhook-id` on every attempt.")
    webhook_id: str
    event_type: str = Field(description="A webhook event type, or `webhook.test`.")
    job_id: str | None
    status: DeliveryStatus
    attempt_count: int
    attempts: list[DeliveryAttempt] = Field(description="Oldest first (the last 100).")
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="When it is tried next, if pending.")
    delivered_at: datetime | None = None


class DeliveryPage(Reply):
    """A webhook's deliveries, newest first."""

    items: list[DeliveryView]
    next_cursor: Cursor = None


class DeliveryRequested(Reply):
    """Answer of a test-send or a re-send: the delivery is on its way."""

    webhook_id: str
    delivery_id: str = Field(description="The delivery's id (its `webhook-id`).")
    detail: str
