"""What request handlers depend on, as protocols, and the runtime that bundles them.

``app.py`` builds the real implementations (MongoDB, S3, RabbitMQ); tests may
hand ``create_app`` a runtime of in-memory fakes instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, Protocol

from palette.common.messages import Message
from palette.common.pricing import PricingTable
from palette.common.seeds import SeedFormat
from palette.gateway.settings import GatewaySettings

Document = dict[str, Any]


class Repository(Protocol):
    """MongoDB access of the gateway (see ``repository.MongoRepository``)."""

    async def ping(self) -> None:
        """Raise unless the database answers."""

    async def ensure_indexes(self) -> None:
        """Create the indexes the gateway's queries use."""

    async def insert_template(self, doc: Document) -> None:
        """Insert one template version."""

    async def find_template(
        self, template_id: str, owner: str, version: int | None = None
    ) -> Document | None:
        """A version (latest when None) the owner may use: theirs or public."""

    async def insert_job(self, doc: Document) -> None:
        """Insert a new job document."""

    async def find_job(self, job_id: str, owner: str) -> Document | None:
        """The owner's job, or None."""

    async def find_ledger(self, job_id: str) -> Document | None:
        """The accounting ledger of a job, or None before its first lease."""

    async def mark_submitted(self, job_id: str) -> None:
        """Record that the job's SubmitJob was published."""

    async def unsubmitted_jobs(self, created_before: datetime, limit: int) -> list[Document]:
        """Jobs whose SubmitJob is not known to be published."""


class SeedStore(Protocol):
    """Seed files in object storage (see ``storage.S3SeedStore``)."""

    async def upload(
        self, key: str, file: IO[bytes], fmt: SeedFormat, records: int, size: int
    ) -> None:
        """Store a validated seed file."""

    async def exists(self, key: str) -> bool:
        """Whether the key holds an object."""

    async def check_records(
        self, key: str, requirements: list[str], limit: int
    ) -> tuple[int, list[str]] | None:
        """The first of ``limit`` records lacking required fields, as (number, fields).

        Raises:
            SeedError: when the leading records cannot be parsed.
        """


class Publisher(Protocol):
    """Publishes messages on the broker (see ``messaging.BrokerPublisher``)."""

    async def publish(self, message: Message) -> None:
        """Publish with confirms; raise if the broker did not take it."""

    async def ping(self) -> bool:
        """Whether the broker connection is up."""


@dataclass(frozen=True, slots=True)
class Runtime:
    """Everything a request handler may use, built once per app lifespan."""

    settings: GatewaySettings
    repository: Repository
    seeds: SeedStore
    publisher: Publisher
    pricing: PricingTable
