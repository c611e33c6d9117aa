"""What request handlers depend on, as protocols, and the runtime that bundles them.

``app.py`` builds the real implementations (MongoDB, S3, RabbitMQ); tests may
hand ``create_app`` a runtime of in-memory fakes instead.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import IO, Any, Protocol, TypeVar

from palette.common.ledger_view import LedgerView
from palette.common.messages import Message
from palette.common.pricing import PricingTable
from palette.common.quota_view import QuotaUse
from palette.common.seeds import SeedFormat
from palette.gateway.limits import OwnerLocks
from palette.gateway.rates import RateTracker
from palette.gateway.settings import GatewaySettings
from palette.gateway.usage import UsageRecords
from palette.gateway.view_memo import JobViews
from palette.gateway.webhook_store import WebhookStore

Document = dict[str, Any]
ReplyT = TypeVar("ReplyT", bound=Message)


class Repository(Protocol):
    """MongoDB access of the gateway (see ``repository.MongoRepository``)."""

    async def ping(self) -> None:
        """Raise unless the database answers."""

    async def ensure_indexes(self) -> None:
        """Create the indexes the gateway's queries use."""

    async def insert_template(self, doc: Document) -> None:
        """Insert one template version (DuplicateKeyError when it exists)."""

    async def find_template(
        self, template_id: str, owner: str, version: int | None = None
    ) -> Document | None:
        """A version (latest when None) the owner may use: theirs or public."""

    async def find_own_template(self, template_id: str, owner: str) -> Document | None:
        """The latest version of the owner's own template."""

    async def list_templates(self, owner: str, after: str | None, limit: int) -> list[Document]:
        """The latest visible version of each template, by id, after ``after``."""

    async def template_versions(self, template_id: str, owner: str) -> list[Document]:
        """Every visible version of a template, newest first."""

    async def delete_template(self, template_id: str, owner: str) -> int:
        """Delete the owner's template; the number of versions deleted."""

    async def template_in_use(self, template_id: str) -> bool:
        """Whether a queued or running job uses the template."""

    async def insert_job(self, doc: Document) -> None:
        """Insert a new job document."""

    async def find_job(self, job_id: str, owner: str, *, fresh: bool = False) -> Document | None:
        """The owner's job, or None; ``fresh``: never a read shared from a moment ago."""

    async def list_jobs(
        self, owner: str, statuses: list[str], before: tuple[datetime, str] | None, limit: int
    ) -> list[Document]:
        """The owner's jobs, newest first, after a cursor position (read only: shared)."""

    async def count_active_jobs(self, owner: str) -> int:
        """How many of the owner's jobs are queued or running."""

    async def ledger(self, job_id: str, budget: int) -> LedgerView:
        """The live ledger of a job."""

    async def ledgers(
        self, budgets: dict[str, int], final: Collection[str] = ()
    ) -> dict[str, LedgerView]:
        """The live ledgers of several jobs (job id -> budget); ``final``: jobs that ended."""

    async def quota_uses(self, models: list[str], region: str) -> list[QuotaUse]:
        """How the generators share these models' quotas now."""

    async def usage(self, owner: str, start: datetime, end: datetime) -> UsageRecords:
        """The owner's leases granted and previews reserved in ``[start, end)``."""

    async def mark_submitted(self, job_id: str) -> None:
        """Record that the job's SubmitJob was published."""

    async def unsubmitted_jobs(self, created_before: datetime, limit: int) -> list[Document]:
        """Jobs whose SubmitJob is not known to be published."""

    async def fail_unsubmittable(self, job_id: str, reason: str, now: datetime) -> bool:
        """Fail a queued, unpublished job whose SubmitJob cannot be built; False if it moved."""

    async def claim_key(
        self, owner: str, key: str, job_id: str, fingerprint: str, now: datetime
    ) -> Document | None:
        """Claim an Idempotency-Key; the earlier claim when it was taken."""

    async def find_key(self, owner: str, key: str) -> Document | None:
        """The claim of an Idempotency-Key, or None."""

    async def forget_keys(self, job_id: str) -> None:
        """Drop the idempotency keys of a job."""


class SeedStore(Protocol):
    """Objects in S3: seed files, presigned URLs, exports (see ``storage.S3SeedStore``)."""

    async def upload(
        self, key: str, file: IO[bytes], fmt: SeedFormat, records: int, size: int
    ) -> None:
        """Store a validated seed file."""

    async def exists(self, key: str) -> bool:
        """Whether the key holds an object."""

    async def size(self, key: str) -> int | None:
        """The object's size in bytes, or None when there is none."""

    async def check_records(
        self, key: str, requirements: list[str], limit: int
    ) -> tuple[int, list[str]] | None:
        """The first of ``limit`` records lacking required fields, as (number, fields).

        Raises:
            SeedError: when the leading records cannot be parsed.
        """

    async def validate(self, key: str, requirements: list[str], examples: int) -> Any:
        """Stream every record of a seed file (a ``seedfiles.ValidationReport``)."""

    async def read_lines(self, prefix: str, limit: int) -> list[bytes]:
        """The first ``limit`` lines of the objects under ``prefix``, in key order."""

    def presign_put(self, key: str, size: int, content_type: str, seconds: int) -> str:
        """A presigned PUT of exactly ``size`` bytes."""

    def presign_get(self, key: str, filename: str, seconds: int) -> str:
        """A presigned GET that downloads as ``filename``."""


class Publisher(Protocol):
    """Publishes messages on the broker (see ``messaging.BrokerPublisher``)."""

    async def publish(self, message: Message) -> None:
        """Publish with confirms; raise if the broker did not take it."""

    async def request(self, message: Message, reply: type[ReplyT], wait_seconds: float) -> ReplyT:
        """Publish and wait for the reply (TimeoutError when none comes in time)."""

    async def ping(self) -> bool:
        """Whether the broker connection is up."""


@dataclass(frozen=True, slots=True)
class GatewayRuntime:
    """Everything a request handler may use, built once per app lifespan."""

    settings: GatewaySettings
    repository: Repository
    seeds: SeedStore
    publisher: Publisher
    pricing: PricingTable
    webhooks: WebhookStore
    rates: RateTracker = field(default_factory=RateTracker)
    locks: OwnerLocks = field(default_factory=OwnerLocks)
    views: JobViews = field(default_factory=JobViews)
