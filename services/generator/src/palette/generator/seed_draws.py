"""Which seed each record of a job draws, and the record's template variables.

Both are functions of the job and the record's index (``palette.common.samplers``),
so any attempt of a partition, on any generator, draws the same. A job whose
variables sample seed values, or whose seed sampling is stratified, needs the
seed file's profile (distinct values, records per value): one streaming pass,
made once per job and process and kept in ``PROFILES_KEPT`` recent profiles.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from cachetools import LRUCache

from palette.common import seeds
from palette.common.samplers import (
    Scalar,
    SeedProfile,
    SeedSampling,
    Stratify,
    draw_variables,
    seed_fields,
    seed_position,
)
from palette.common.templates import TemplateSpec
from palette.generator.records import FinishedRecord
from palette.generator.storage import Storage

PROFILES_KEPT = 16
_profiles: LRUCache[tuple[str, str], SeedProfile] = LRUCache(PROFILES_KEPT)


class DrawnJob(Protocol):
    """What a job's draws depend on: a ``GeneratePartition`` has it, so has ``JobSeeds``."""

    @property
    def job_id(self) -> str:
        """The job."""

    @property
    def template(self) -> TemplateSpec:
        """Its template (the variables drawn)."""

    @property
    def seed_key(self) -> str:
        """Its seed file."""

    @property
    def seed_count(self) -> int:
        """Records in the seed file."""

    @property
    def seed_sampling(self) -> SeedSampling:
        """How records draw seeds."""


class SeedDraws:
    """An attempt's draws: ``position(index)`` of the seed, ``variables(index)``."""

    def __init__(self, msg: DrawnJob, profile: SeedProfile | None) -> None:
        self._msg = msg
        self._profile = profile
        self._variables = msg.template.variables
        self._values = profile.values if profile is not None else {}

    @property
    def job_id(self) -> str:
        """The job drawn for."""
        return self._msg.job_id

    def position(self, index: int) -> int:
        """The seed record (0-based) record ``index`` draws."""
        msg = self._msg
        return seed_position(msg.seed_sampling, msg.job_id, index, msg.seed_count, self._profile)

    def record(self, index: int, position: int) -> FinishedRecord:
        """A new record ``index`` drawing seed ``position``, with its variables."""
        return FinishedRecord(index=index, seed_index=position, variables=self.variables(index))

    def variables(self, index: int) -> dict[str, Scalar]:
        """Record ``index``'s draw of the template's variables ({} without any)."""
        if not self._variables:
            return {}
        return draw_variables(self._variables, self._msg.job_id, index, self._values)


def _read_profile(
    storage: Storage, key: str, fields: list[str], stratify: str | None
) -> SeedProfile:
    with storage.open(key) as stream:
        records = seeds.read_records(stream, seeds.format_from_name(key))
        return SeedProfile.build(records, fields, stratify)


async def load_draws(storage: Storage, msg: DrawnJob) -> SeedDraws:
    """The attempt's draws, reading the seed file's profile when they need it.

    Raises:
        seeds.SeedError: the seed file cannot be read, or a sampled field cannot
            be sampled (no value, a value that is not a scalar).
    """
    sampling = msg.seed_sampling
    stratify = sampling.stratify if isinstance(sampling, Stratify) else None
    fields = seed_fields(msg.template.variables, sampling)
    if not fields:
        return SeedDraws(msg, None)
    cache_key = (msg.job_id, ",".join(fields))
    profile = _profiles.get(cache_key)
    if profile is None:
        try:
            read = await asyncio.to_thread(_read_profile, storage, msg.seed_key, fields, stratify)
        except ValueError as exc:
            raise seeds.SeedError(str(exc)) from None
        profile = _profiles[cache_key] = read
    return SeedDraws(msg, profile)
