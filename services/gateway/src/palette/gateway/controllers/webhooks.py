"""``/webhooks``: endpoints that hear of the caller's job events, and what was delivered.

The gateway keeps the webhooks; accounting makes and sends the deliveries
(``docs/internals.md``, "Webhooks"). A test-send and a re-send are commands to
accounting, answered 202 at once; ``GET /webhooks/{id}/deliveries`` shows every
attempt.
"""

from __future__ import annotations

import base64
import secrets
from typing import Annotated, Any

from litestar import Controller, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from palette.common.messages import ResendWebhookDelivery, SendTestWebhook
from palette.common.webhooks import (
    WebhookTargetError,
    new_test_event_id,
    new_webhook_id,
    resolve_target,
)
from palette.gateway.job_views import now_ms
from palette.gateway.openapi import problems
from palette.gateway.pagination import job_cursor, job_position
from palette.gateway.ports import GatewayRuntime
from palette.gateway.problems import Problem, invalid, not_found
from palette.gateway.schemas.webhooks import (
    CreateWebhook,
    DeliveryAttempt,
    DeliveryPage,
    DeliveryRequested,
    DeliveryView,
    WebhookCreated,
    WebhookList,
    WebhookView,
)

RESOLVE_SECONDS = 5.0
SECRET_BYTES = 32


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def webhook_view(doc: dict[str, Any]) -> WebhookView:
    """A webhook as the API shows it (never its secret)."""
    return WebhookView(
        id=doc["_id"],
        url=doc["url"],
        events=doc["events"],
        description=doc.get("description"),
        created_at=doc["created_at"],
    )


def delivery_view(doc: dict[str, Any]) -> DeliveryView:
    """A delivery with its attempts."""
    return DeliveryView(
        id=doc["event_id"],
        webhook_id=doc["webhook_id"],
        event_type=doc["event_type"],
        job_id=doc.get("job_id"),
        status=doc["status"],
        attempt_count=int(doc.get("attempt_count", 0)),
        attempts=[DeliveryAttempt(**attempt) for attempt in doc.get("attempts") or []],
        created_at=doc["created_at"],
        next_attempt_at=doc.get("next_attempt_at") if doc["status"] == "pending" else None,
        delivered_at=doc.get("delivered_at"),
    )


async def owned_webhook(runtime: GatewayRuntime, owner: str, webhook_id: str) -> dict[str, Any]:
    """The caller's webhook, else 404 (another user's looks exactly like a missing one)."""
    doc = await runtime.webhooks.find(webhook_id, owner)
    if doc is None:
        raise not_found("webhook_id", f"no webhook {webhook_id!r}")
    return doc


class WebhookController(Controller):
    """A webhook belongs to its creator; another user's webhook answers 404."""

    path = "/webhooks"
    tags = ["webhooks"]

    @post(
        operation_id="createWebhook",
        summary="Add a webhook for your job events (its signing secret is shown once)",
        status_code=HTTP_201_CREATED,
        responses=problems(409),
    )
    async def create(
        self,
        data: JSONBody[CreateWebhook],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
    ) -> WebhookCreated:
        """Check the URL (https, a host with public addresses only), then store the webhook.

        422 naming `url` when the URL is not allowed or its host does not
        resolve; 409 when the caller has `PALETTE_GATEWAY_MAX_WEBHOOKS` already.
        Each delivery is signed as the Standard Webhooks specification says,
        with the `secret` of this answer.
        """
        settings = runtime.settings
        try:
            await resolve_target(
                data.url, settings.webhook_allowed_hosts, resolve_seconds=RESOLVE_SECONDS
            )
        except WebhookTargetError as exc:
            raise invalid("url", str(exc)) from None
        if await runtime.webhooks.count(owner) >= settings.max_webhooks:
            raise Problem(
                409,
                f"you have {settings.max_webhooks} webhooks, the most allowed: delete one first",
                errors=[{"field": "url", "problem": "too many webhooks"}],
            )
        doc = {
            "_id": new_webhook_id(),
            "owner": owner,
            "url": data.url,
            "events": [event.value for event in data.events],
            "description": data.description,
            "secret": new_secret(),
            "created_at": now_ms(),
        }
        await runtime.webhooks.insert(doc)
        return WebhookCreated(**webhook_view(doc).model_dump(), secret=doc["secret"])

    @get(operation_id="listWebhooks", summary="Your webhooks", responses=problems())
    async def list_webhooks(
        self, runtime: NamedDependency[GatewayRuntime], owner: NamedDependency[str]
    ) -> WebhookList:
        """Every webhook of the caller, oldest first (without secrets)."""
        return WebhookList(
            items=[webhook_view(doc) for doc in await runtime.webhooks.list_for(owner)]
        )

    @get(
        "/{webhook_id:str}",
        operation_id="getWebhook",
        summary="One of your webhooks",
        responses=problems(404),
    )
    async def read(
        self,
        webhook_id: FromPath[str],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
    ) -> WebhookView:
        """The webhook (without its secret)."""
        return webhook_view(await owned_webhook(runtime, owner, webhook_id))

    @delete(
        "/{webhook_id:str}",
        operation_id="deleteWebhook",
        summary="Delete a webhook",
        status_code=HTTP_204_NO_CONTENT,
        responses=problems(404),
    )
    async def remove(
        self,
        webhook_id: FromPath[str],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
    ) -> None:
        """Nothing more is sent to it; deliveries still pending fail when they come due."""
        if not await runtime.webhooks.delete(webhook_id, owner):
            raise not_found("webhook_id", f"no webhook {webhook_id!r}")

    @post(
        "/{webhook_id:str}/test",
        operation_id="testWebhook",
        summary="Send a test event (`webhook.test`) to a webhook",
        status_code=HTTP_202_ACCEPTED,
        responses=problems(404),
    )
    async def test_send(
        self,
        webhook_id: FromPath[str],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
    ) -> DeliveryRequested:
        """202 once the request is on the broker; the delivery's attempts show in its log."""
        await owned_webhook(runtime, owner, webhook_id)
        event_id = new_test_event_id()
        await runtime.publisher.publish(
            SendTestWebhook(
                message_id=event_id, webhook_id=webhook_id, owner=owner, event_id=event_id
            )
        )
        return DeliveryRequested(
            webhook_id=webhook_id, delivery_id=event_id, detail="a test event is being sent"
        )

    @get(
        "/{webhook_id:str}/deliveries",
        operation_id="listWebhookDeliveries",
        summary="What was sent to a webhook: every delivery and attempt, newest first",
        responses=problems(404),
    )
    async def deliveries(
        self,
        webhook_id: FromPath[str],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
        limit: Annotated[int, QueryParameter(ge=1, le=100, description="Page size.")] = 20,
        cursor: Annotated[
            str | None, QueryParameter(max_length=1000, description="`next_cursor` of a page.")
        ] = None,
    ) -> DeliveryPage:
        """Each delivery's status, and each attempt's time, response code, latency and error."""
        await owned_webhook(runtime, owner, webhook_id)
        before = job_position(cursor) if cursor else None  # (created_at, id): as jobs' cursors
        docs = await runtime.webhooks.deliveries(webhook_id, owner, before, limit + 1)
        page, more = docs[:limit], len(docs) > limit
        last = page[-1] if more else None
        return DeliveryPage(
            items=[delivery_view(doc) for doc in page],
            next_cursor=job_cursor(last["created_at"], str(last["_id"])) if last else None,
        )

    @post(
        "/{webhook_id:str}/deliveries/{delivery_id:str}/resend",
        operation_id="resendWebhookDelivery",
        summary="Send a delivery again (same `webhook-id`, a new series of attempts)",
        status_code=HTTP_202_ACCEPTED,
        responses=problems(404),
    )
    async def resend(
        self,
        webhook_id: FromPath[str],
        delivery_id: FromPath[str],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
    ) -> DeliveryRequested:
        """202 once the request is on the broker; the new attempts show in the delivery's log."""
        await owned_webhook(runtime, owner, webhook_id)
        if await runtime.webhooks.delivery(webhook_id, owner, delivery_id) is None:
            raise not_found("delivery_id", f"no delivery {delivery_id!r} of this webhook")
        await runtime.publisher.publish(
            ResendWebhookDelivery(webhook_id=webhook_id, owner=owner, event_id=delivery_id)
        )
        return DeliveryRequested(
            webhook_id=webhook_id, delivery_id=delivery_id, detail="the delivery is sent again"
        )
