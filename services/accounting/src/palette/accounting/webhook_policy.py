"""Webhook deliveries without I/O: their documents, bodies, signatures and retry schedule.

A delivery is one event for one webhook: ``_id`` ``<webhook_id>:<event_id>``,
its body fixed when it is made (every attempt sends the same bytes), and a
schedule: ``next_attempt_at`` (due), ``give_up_at`` (the bound on retries).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from standardwebhooks.webhooks import Webhook

Doc = dict[str, Any]

PENDING = "pending"
DELIVERED = "delivered"
FAILED = "failed"
USER_AGENT = "PlotPalette-Webhooks/1"
ATTEMPTS_KEPT = 100


def body(event_type: str, occurred_at: datetime, data: Mapping[str, Any]) -> str:
    """The JSON body of an event, as the Standard Webhooks spec suggests: type, timestamp, data."""
    return json.dumps(
        {"type": event_type, "timestamp": occurred_at.isoformat(), "data": dict(data)},
        separators=(",", ":"),
        sort_keys=True,
    )


def delivery(
    webhook: Mapping[str, Any],
    event_id: str,
    event_type: str,
    payload: str,
    *,
    job_id: str | None,
    now: datetime,
    retry_for_seconds: float,
) -> Doc:
    """A new delivery of an event to a webhook, due now."""
    return {
        "_id": f"{webhook['_id']}:{event_id}",
        "webhook_id": webhook["_id"],
        "owner": webhook["owner"],
        "event_id": event_id,
        "event_type": event_type,
        "job_id": job_id,
        "payload": payload,
        "status": PENDING,
        "attempt_count": 0,
        "attempts": [],
        "created_at": now,
        "next_attempt_at": now,
        "give_up_at": now + timedelta(seconds=retry_for_seconds),
    }


def signed_headers(secret: str, event_id: str, payload: bytes, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt (signed at ``at``)."""
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, at, payload),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def retry_delay(attempt: int, initial: float, maximum: float, rand: Callable[[], float]) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...).

    Exponential (``initial * 2**(attempt-1)``, at most ``maximum``) with "equal
    jitter": a random half of the wait, so receivers that failed together are
    not retried together.
    """
    base = min(maximum, initial * 2.0 ** min(attempt - 1, 62))
    return base / 2 + rand() * base / 2


def next_attempt(
    attempt: int,
    now: datetime,
    give_up_at: datetime,
    initial: float,
    maximum: float,
    rand: Callable[[], float],
) -> datetime | None:
    """When to try again after failed attempt ``attempt``; None once past ``give_up_at``."""
    at = now + timedelta(seconds=retry_delay(attempt, initial, maximum, rand))
    return at if at <= give_up_at else None


def attempt_entry(
    number: int,
    at: datetime,
    status_code: int | None,
    latency_ms: int | None,
    error: str | None,
) -> Doc:
    """One attempt as the delivery log keeps it."""
    return {
        "attempt": number,
        "at": at,
        "status_code": status_code,
        "latency_ms": latency_ms,
        "error": error,
    }


def sample_data(webhook_id: str) -> dict[str, Any]:
    """The ``data`` of a test event."""
    return {"webhook_id": webhook_id, "message": "a test event sent from Plot Palette"}
