"""Reads of ``jobs`` and ``leases`` (the generator writes only its ``claims``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter
from pymongo.asynchronous.database import AsyncDatabase

from palette.common.job_view import export_facts, job_status, seed_facts
from palette.common.lease_view import lease_closed
from palette.common.messages import JobStatus
from palette.common.record_filters import Dedup
from palette.common.samplers import SeedSampling
from palette.common.targets import keep_limit
from palette.common.templates import TemplateSpec

SEED_SAMPLING: TypeAdapter[SeedSampling] = TypeAdapter(SeedSampling)


@dataclass(frozen=True, slots=True)
class Filters:
    """A job's ``keep_if`` and ``dedup`` (``palette.common.record_filters``)."""

    keep_if: str | None = None
    dedup: Dedup | None = None
    template_keep_if: str | None = None
    """The template's own ``keep_if``: it applies as well as the job's."""
    keep_limit: int | None = None
    """A ``target: "kept"`` job keeps at most this many records (the rest: ``surplus``)."""

    @property
    def filters(self) -> bool:
        """Whether a record filter (``keep_if`` or ``dedup``) applies."""
        return any(f is not None for f in (self.keep_if, self.dedup, self.template_keep_if))

    @property
    def active(self) -> bool:
        """Whether the job rejects anything at all."""
        return self.filters or self.keep_limit is not None


@dataclass(frozen=True, slots=True)
class ExportInfo:
    """What an export needs to know about its job."""

    num_records: int
    """Record indexes ``[0, num_records)`` the dataset holds (a kept job's planned ones)."""
    template: TemplateSpec
    filters: Filters = Filters()


@dataclass(frozen=True, slots=True)
class JobSeeds:
    """What a started job's records draw from (``seed_draws.DrawnJob``)."""

    job_id: str
    template: TemplateSpec
    seed_key: str
    seed_count: int
    seed_sampling: SeedSampling


class JobsRepository:
    """Job status and export facts, read from the ``jobs`` collection (``job_view``)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._db = db

    async def status(self, job_id: str) -> JobStatus | None:
        """The job's status, or None when there is no such job (yet)."""
        return await job_status(self._db, job_id)

    async def export_info(self, job_id: str) -> ExportInfo | None:
        """The job's record count and template snapshot, or None if no such job."""
        facts = await export_facts(self._db, job_id)
        if facts is None:
            return None
        template = TemplateSpec.model_validate(facts.template)
        return ExportInfo(
            num_records=facts.planned_records,
            template=template,
            filters=Filters(
                facts.keep_if,
                Dedup.model_validate(facts.dedup) if facts.dedup else None,
                template.keep_if,
                keep_limit(facts.target, facts.num_records),
            ),
        )

    async def seeds_of(self, job_id: str) -> JobSeeds | None:
        """The job's template and seeds, or None if no such job or it never started."""
        facts = await seed_facts(self._db, job_id)
        if facts is None:
            return None
        return JobSeeds(
            job_id=job_id,
            template=TemplateSpec.model_validate(facts.template),
            seed_key=facts.seed_key,
            seed_count=facts.seed_count,
            seed_sampling=SEED_SAMPLING.validate_python(facts.seed_sampling),
        )


class LeasesRepository:
    """Reads of the ``leases`` collection (written by accounting)."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self._db = db

    async def is_closed(self, lease_id: str) -> bool:
        """Whether the lease can no longer be spent: accounting closed it, or it is gone.

        A lease purged with its deleted job has its claims gone too.
        """
        return await lease_closed(self._db, lease_id)
