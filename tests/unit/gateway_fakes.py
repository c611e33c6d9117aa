"""In-memory stand-ins for the gateway's database, S3 and broker, for fast app-level unit tests.

The real behaviour is tested against the real services in tests/integration.
``create_app(settings, runtime_factory=InMemoryWorld().runtime)`` gives a
gateway whose database, seed store and broker are plain Python objects that a
test can inspect and break (``publisher.down = True``).
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from datetime import datetime
from typing import IO, Any

from palette.common.ledger_view import LedgerView
from palette.common.messages import Message
from palette.common.pricing import load_pricing
from palette.common.quota_view import QuotaUse
from palette.common.seeds import SeedFormat, format_from_name, read_records
from palette.gateway.ports import GatewayRuntime
from palette.gateway.seedfiles import first_missing, validate_records
from palette.gateway.settings import GatewaySettings

Doc = dict[str, Any]


class ManualClock:
    """A clock for pure logic that takes one: it shows ``now``, which a test moves."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class InMemoryRepository:
    """The ``Repository`` port over dictionaries."""

    def __init__(self) -> None:
        self.templates: dict[str, Doc] = {}
        self.jobs: dict[str, Doc] = {}
        self.ledger_docs: dict[str, Doc] = {}
        self.keys: dict[tuple[str, str], Doc] = {}
        self.down = False

    async def ping(self) -> None:
        """Raise when marked down."""
        if self.down:
            raise ConnectionError("database down")

    async def ensure_indexes(self) -> None:
        """Nothing to index."""

    async def insert_template(self, doc: Doc) -> None:
        """Store a template version; a duplicate ``_id`` is an error."""
        if doc["_id"] in self.templates:
            raise KeyError(doc["_id"])
        self.templates[doc["_id"]] = dict(doc)

    async def find_template(
        self, template_id: str, owner: str, version: int | None = None
    ) -> Doc | None:
        """The latest (or given) version that is the owner's or public."""
        found = [
            t
            for t in self.templates.values()
            if t["template_id"] == template_id
            and (t["owner"] == owner or t["public"])
            and version in (None, t["version"])
        ]
        return dict(max(found, key=lambda t: int(t["version"]))) if found else None

    async def insert_job(self, doc: Doc) -> None:
        """Store a job; a duplicate ``_id`` is an error."""
        if doc["_id"] in self.jobs:
            raise KeyError(doc["_id"])
        self.jobs[doc["_id"]] = dict(doc)

    async def find_job(self, job_id: str, owner: str, *, fresh: bool = False) -> Doc | None:
        """The owner's job, or None (every read is fresh here)."""
        job = self.jobs.get(job_id)
        return dict(job) if job and job["owner"] == owner else None

    async def find_own_template(self, template_id: str, owner: str) -> Doc | None:
        """The latest version of the owner's template."""
        found = [
            t
            for t in self.templates.values()
            if t["template_id"] == template_id and t["owner"] == owner
        ]
        return dict(max(found, key=lambda t: int(t["version"]))) if found else None

    async def list_templates(self, owner: str, after: str | None, limit: int) -> list[Doc]:
        """The latest visible version of each template, by id."""
        latest: dict[str, Doc] = {}
        visible = [
            t
            for t in self.templates.values()
            if (t["owner"] == owner or t["public"]) and (after is None or t["template_id"] > after)
        ]
        for t in sorted(visible, key=lambda t: int(t["version"])):
            latest[t["template_id"]] = t
        return [dict(latest[k]) for k in sorted(latest)][:limit]

    async def template_versions(self, template_id: str, owner: str) -> list[Doc]:
        """Visible versions, newest first."""
        found = [
            dict(t)
            for t in self.templates.values()
            if t["template_id"] == template_id and (t["owner"] == owner or t["public"])
        ]
        return sorted(found, key=lambda t: -int(t["version"]))

    async def delete_template(self, template_id: str, owner: str) -> int:
        """Delete the owner's versions."""
        doomed = [
            k
            for k, t in self.templates.items()
            if t["template_id"] == template_id and t["owner"] == owner
        ]
        for k in doomed:
            del self.templates[k]
        return len(doomed)

    async def template_in_use(self, template_id: str) -> bool:
        """Whether an active job uses the template."""
        return any(
            j["template_id"] == template_id and j["status"] in ("QUEUED", "RUNNING")
            for j in self.jobs.values()
        )

    async def list_jobs(
        self, owner: str, statuses: list[str], before: Any, limit: int
    ) -> list[Doc]:
        """The owner's jobs, newest first."""
        jobs = [
            dict(j)
            for j in self.jobs.values()
            if j["owner"] == owner
            and (not statuses or j["status"] in statuses)
            and (before is None or (j["created_at"], j["_id"]) < before)
        ]
        jobs.sort(key=lambda j: (j["created_at"], j["_id"]), reverse=True)
        return jobs[:limit]

    async def count_active_jobs(self, owner: str) -> int:
        """The owner's queued or running jobs."""
        return sum(
            1
            for j in self.jobs.values()
            if j["owner"] == owner and j["status"] in ("QUEUED", "RUNNING")
        )

    async def ledgers(
        self, budgets: dict[str, int], final: Collection[str] = ()
    ) -> dict[str, LedgerView]:
        """Every job's ledger view (``final`` changes nothing here: nothing is kept)."""
        return {job_id: await self.ledger(job_id, budget) for job_id, budget in budgets.items()}

    async def quota_uses(self, models: list[str], region: str) -> list[QuotaUse]:
        """No generator shares a quota here."""
        return []

    async def ledger(self, job_id: str, budget: int) -> LedgerView:
        """A ledger view from the stored spent/reserved amounts."""
        doc = self.ledger_docs.get(job_id)
        if doc is None:
            return LedgerView.empty(budget)
        spent, reserved = int(doc.get("spent", 0)), int(doc.get("reserved", 0))
        return LedgerView(
            budget=budget, spent=spent, reserved=reserved, available=budget - spent - reserved
        )

    async def claim_key(
        self, owner: str, key: str, job_id: str, fingerprint: str, now: datetime
    ) -> Doc | None:
        """Claim an idempotency key; the earlier claim when taken."""
        found = self.keys.get((owner, key))
        if found is not None:
            return dict(found)
        self.keys[(owner, key)] = {"job_id": job_id, "fingerprint": fingerprint}
        return None

    async def find_key(self, owner: str, key: str) -> Doc | None:
        """The claim of a key."""
        found = self.keys.get((owner, key))
        return dict(found) if found else None

    async def forget_keys(self, job_id: str) -> None:
        """Drop a job's keys."""
        for k in [k for k, v in self.keys.items() if v["job_id"] == job_id]:
            del self.keys[k]

    async def mark_submitted(self, job_id: str) -> None:
        """Set the outbox flag."""
        self.jobs[job_id]["submit_published"] = True

    async def fail_unsubmittable(self, job_id: str, reason: str, now: datetime) -> bool:
        """Fail a queued job with the outbox flag unset."""
        job = self.jobs.get(job_id)
        if job is None or job["status"] != "QUEUED" or job["submit_published"] is not False:
            return False
        job.update(status="FAILED", error=reason, finished_at=now, submit_published=None)
        return True

    async def unsubmitted_jobs(self, created_before: datetime, limit: int) -> list[Doc]:
        """Jobs created before the cutoff with the outbox flag unset."""
        waiting = [
            dict(job)
            for job in self.jobs.values()
            if job["submit_published"] is False and job["created_at"] < created_before
        ]
        return waiting[:limit]


class InMemorySeedStore:
    """The ``SeedStore`` port over a dictionary of key to bytes."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def upload(
        self, key: str, file: IO[bytes], fmt: SeedFormat, records: int, size: int
    ) -> None:
        """Keep the file's bytes."""
        file.seek(0)
        self.objects[key] = file.read()

    async def exists(self, key: str) -> bool:
        """Whether the key was uploaded."""
        return key in self.objects

    async def check_records(
        self, key: str, requirements: list[str], limit: int
    ) -> tuple[int, list[str]] | None:
        """The first leading record lacking required fields."""
        records = read_records(io.BytesIO(self.objects[key]), format_from_name(key))
        return first_missing(records, requirements, limit)

    async def size(self, key: str) -> int | None:
        """The object's size."""
        body = self.objects.get(key)
        return None if body is None else len(body)

    async def validate(self, key: str, requirements: list[str], examples: int) -> Any:
        """Check every record of an uploaded file."""
        fmt = format_from_name(key)
        records = read_records(io.BytesIO(self.objects[key]), fmt)
        report = validate_records(records, requirements, examples)
        report.format = fmt
        return report

    async def read_lines(self, prefix: str, limit: int) -> list[bytes]:
        """The first lines of the objects under ``prefix``, in key order."""
        lines = [
            line
            for key in sorted(k for k in self.objects if k.startswith(prefix))
            for line in self.objects[key].splitlines()
            if line.strip()
        ]
        return lines[:limit]

    def presign_put(self, key: str, size: int, content_type: str, seconds: int) -> str:
        """A fake URL."""
        return f"memory://put/{key}?size={size}"

    def presign_get(self, key: str, filename: str, seconds: int) -> str:
        """A fake URL."""
        return f"memory://get/{key}"


class RecordingPublisher:
    """The ``Publisher`` port that records messages, or fails while ``down``."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.down = False

    async def publish(self, message: Message) -> None:
        """Record the message, or raise while down."""
        if self.down:
            raise ConnectionError("broker down")
        self.sent.append(message)

    async def request(self, message: Message, reply: type[Any], wait_seconds: float) -> Any:
        """No generator answers in memory."""
        raise TimeoutError("no generator in memory")

    async def ping(self) -> bool:
        """Whether the fake broker is up."""
        return not self.down


class InMemoryWebhookStore:
    """The ``WebhookStore`` port over dictionaries (deliveries are put in by the test)."""

    def __init__(self) -> None:
        self.webhooks: dict[str, Doc] = {}
        self.delivery_docs: dict[str, Doc] = {}

    async def insert(self, doc: Doc) -> None:
        """Store a webhook."""
        self.webhooks[doc["_id"]] = dict(doc)

    async def list_for(self, owner: str) -> list[Doc]:
        """The owner's webhooks, oldest first."""
        own = [d for d in self.webhooks.values() if d["owner"] == owner]
        return sorted(own, key=lambda d: (d["created_at"], d["_id"]))

    async def count(self, owner: str) -> int:
        """How many webhooks the owner has."""
        return len(await self.list_for(owner))

    async def find(self, webhook_id: str, owner: str) -> Doc | None:
        """The owner's webhook, or None."""
        doc = self.webhooks.get(webhook_id)
        return doc if doc is not None and doc["owner"] == owner else None

    async def delete(self, webhook_id: str, owner: str) -> bool:
        """Delete the owner's webhook."""
        if await self.find(webhook_id, owner) is None:
            return False
        del self.webhooks[webhook_id]
        return True

    async def deliveries(
        self, webhook_id: str, owner: str, before: tuple[datetime, str] | None, limit: int
    ) -> list[Doc]:
        """The webhook's deliveries, newest first, after a cursor position."""
        own = [
            d
            for d in self.delivery_docs.values()
            if d["webhook_id"] == webhook_id
            and d["owner"] == owner
            and (before is None or (d["created_at"], d["_id"]) < before)
        ]
        return sorted(own, key=lambda d: (d["created_at"], d["_id"]), reverse=True)[:limit]

    async def delivery(self, webhook_id: str, owner: str, event_id: str) -> Doc | None:
        """One delivery of the owner's webhook, or None."""
        doc = self.delivery_docs.get(f"{webhook_id}:{event_id}")
        return doc if doc is not None and doc["owner"] == owner else None


class InMemoryWorld:
    """One set of in-memory ports and a runtime factory for ``create_app``."""

    def __init__(self) -> None:
        self.repository = InMemoryRepository()
        self.seeds = InMemorySeedStore()
        self.publisher = RecordingPublisher()
        self.webhooks = InMemoryWebhookStore()

    @asynccontextmanager
    async def runtime(self, settings: GatewaySettings) -> AsyncIterator[GatewayRuntime]:
        """The runtime of the app's lifespan, built on this world's ports."""
        yield GatewayRuntime(
            settings=settings,
            repository=self.repository,
            seeds=self.seeds,
            publisher=self.publisher,
            pricing=load_pricing(settings.pricing_file),
            webhooks=self.webhooks,
        )
