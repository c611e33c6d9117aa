"""Sending webhook deliveries: claim what is due, attempt it, record it, schedule the retry.

The schedule lives in the delivery documents (``webhook_store``), never in a
process's memory: a loop claims due deliveries (every ``webhook_poll_seconds``,
or at once when this process made one), attempts each, and writes the
attempt and the outcome. A killed process's claimed delivery is due again when
its claim lapses, so any accounting process delivers it after a restart.

One attempt (``post``): the URL's host is resolved and every address checked
(``palette.common.webhooks.resolve_target``); the request goes to a checked
address (the URL's host replaced by it, ``Host`` and TLS SNI/certificate name
kept), never through a proxy, with redirects not followed and no connection
kept for another request. A 2xx answer delivers; any other answer, a
timeout or a connection error is retried with backoff until ``give_up_at``;
a refused URL fails at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
import structlog

from palette.accounting import webhook_policy as policy
from palette.accounting.settings import AccountingSettings
from palette.accounting.webhook_store import Doc, WebhookStore
from palette.common.messages import utcnow
from palette.common.webhooks import (
    RefusedTargetError,
    Resolver,
    Target,
    UnresolvedTargetError,
    resolve_target,
    system_resolver,
)

log = structlog.get_logger("palette.accounting.webhooks")


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one attempt got: a status code, or an error; and whether to try again."""

    status_code: int | None
    latency_ms: int | None
    error: str | None
    retry: bool = True

    @property
    def delivered(self) -> bool:
        """Whether the receiver answered 2xx."""
        return self.status_code is not None and 200 <= self.status_code < 300


def make_client(settings: AccountingSettings) -> httpx.AsyncClient:
    """The HTTP client of deliveries: no proxies from the environment, no redirects, no reuse."""
    return httpx.AsyncClient(
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(settings.webhook_timeout_seconds),
        limits=httpx.Limits(
            max_connections=settings.webhook_concurrency, max_keepalive_connections=0
        ),
    )


async def _send(
    client: httpx.AsyncClient, target: Target, headers: dict[str, str], payload: bytes
) -> int:
    """POST to the target (at a checked address unless allow-listed); the status code."""
    if target.allow_listed:
        async with client.stream("POST", target.url, headers=headers, content=payload) as answer:
            return answer.status_code
    url = httpx.URL(target.url)
    pinned = {**headers, "host": url.netloc.decode("ascii")}
    sni = url.raw_host.decode("ascii")
    failure: httpx.ConnectError | None = None
    for address in target.addresses:
        try:
            async with client.stream(
                "POST",
                url.copy_with(host=address.split("%", 1)[0]),
                headers=pinned,
                content=payload,
                extensions={"sni_hostname": sni},
            ) as answer:
                return answer.status_code
        except httpx.ConnectError as exc:  # the next checked address, if any
            failure = exc
    assert failure is not None
    raise failure


async def post(
    client: httpx.AsyncClient,
    url: str,
    secret: str,
    event_id: str,
    payload: bytes,
    *,
    allowed_hosts: Collection[str],
    limit_seconds: float,
    resolver: Resolver = system_resolver,
    clock: Callable[[], datetime] = utcnow,
) -> AttemptResult:
    """One signed attempt of a delivery, bounded by ``limit_seconds`` in all."""
    started = time.monotonic()

    def elapsed() -> int:
        return round((time.monotonic() - started) * 1000)

    try:
        async with asyncio.timeout(limit_seconds):
            target = await resolve_target(
                url, allowed_hosts, resolver=resolver, resolve_seconds=limit_seconds
            )
            headers = policy.signed_headers(secret, event_id, payload, clock())
            status = await _send(client, target, headers, payload)
    except RefusedTargetError as exc:
        return AttemptResult(None, None, f"refused: {exc}", retry=False)
    except UnresolvedTargetError as exc:
        return AttemptResult(None, None, str(exc))
    except TimeoutError:
        return AttemptResult(None, elapsed(), f"no answer within {limit_seconds:g}s")
    except (httpx.HTTPError, OSError) as exc:
        return AttemptResult(None, elapsed(), f"{type(exc).__name__}: {exc}"[:500])
    return AttemptResult(status, elapsed(), None if 200 <= status < 300 else f"HTTP {status}")


class WebhookSender:
    """Claims due deliveries and attempts them, at most ``webhook_concurrency`` at once."""

    def __init__(
        self,
        store: WebhookStore,
        settings: AccountingSettings,
        client: httpx.AsyncClient,
        *,
        resolver: Resolver = system_resolver,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.settings = settings
        self.client = client
        self.resolver = resolver
        self.rand = rand
        self._wake = asyncio.Event()
        self._running: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """Look for due deliveries now (this process just made one)."""
        self._wake.set()

    async def run_forever(self) -> None:
        """Claim and attempt until cancelled; then cancel the attempts in flight."""
        try:
            while True:
                self._wake.clear()
                try:
                    await self.run_once()
                except Exception:
                    log.exception("webhook_pass_failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.webhook_poll_seconds)
        finally:
            for task in list(self._running):
                task.cancel()
            for task in list(self._running):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def run_once(self) -> int:
        """Start an attempt of every due delivery there is room for; how many started."""
        started = 0
        while len(self._running) < self.settings.webhook_concurrency:
            token = uuid.uuid4().hex
            doc = await self.store.claim(utcnow(), self.settings.webhook_claim_seconds, token)
            if doc is None:
                break
            task = asyncio.create_task(self.attempt(doc, token))
            self._running.add(task)
            task.add_done_callback(self._finished)
            started += 1
        return started

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("webhook_attempt_crashed", error=repr(task.exception()))
        self._wake.set()  # room for the next one

    async def attempt(self, doc: Doc, token: str) -> None:
        """Attempt a claimed delivery once and record what happened."""
        number = int(doc.get("attempt_count", 0)) + 1
        at = utcnow()
        webhook = await self.store.webhook(doc["webhook_id"])
        if webhook is None:
            result = AttemptResult(None, None, "the webhook was deleted", retry=False)
        else:
            result = await post(
                self.client,
                webhook["url"],
                webhook["secret"],
                doc["event_id"],
                doc["payload"].encode(),
                allowed_hosts=self.settings.webhook_allowed_hosts,
                limit_seconds=self.settings.webhook_timeout_seconds,
                resolver=self.resolver,
            )
        entry = policy.attempt_entry(
            number, at, result.status_code, result.latency_ms, result.error
        )
        outcome = self._outcome(doc, number, result)
        held = await self.store.record(doc["_id"], token, entry, outcome)
        log.info(
            "webhook_attempted",
            delivery_id=doc["_id"],
            job_id=doc.get("job_id"),
            event_type=doc.get("event_type"),
            attempt=number,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
            outcome=outcome["status"],
            claim_lost=not held,
        )

    def _outcome(self, doc: Doc, number: int, result: AttemptResult) -> dict[str, Any]:
        now = utcnow()
        if result.delivered:
            return {"status": policy.DELIVERED, "delivered_at": now, "next_attempt_at": None}
        retry_at = None
        if result.retry:
            retry_at = policy.next_attempt(
                number,
                now,
                doc["give_up_at"],
                self.settings.webhook_retry_initial_seconds,
                self.settings.webhook_retry_max_interval_seconds,
                self.rand,
            )
        if retry_at is None:
            return {"status": policy.FAILED, "failed_at": now, "next_attempt_at": None}
        return {"status": policy.PENDING, "next_attempt_at": retry_at}
