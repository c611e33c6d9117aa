"""Bedrock runtime quotas as data: requests and tokens per minute per Region and model.

The table ships as ``quotas.json`` beside this module; an explicit path (the
``PALETTE_QUOTAS_FILE`` setting of whoever loads it) replaces it. Each entry gives
the model id's tokens per minute, requests per minute (None: not enforced), tokens
per day (None: Bedrock's default, TPM x 1,440) and output burndown rate, with the
source and date. A cross-region inference profile id has an entry of its own (its
own quota); its burndown is its base model's.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from palette.common.model_ids import base_model_id

DEFAULT_QUOTAS_FILE = Path(__file__).with_name("quotas.json")
MINUTES_PER_DAY: Final = 24 * 60


class QuotaEntry(BaseModel):
    """One model id's runtime quotas in one Region."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rpm: int | None = Field(None, ge=0, description="Requests per minute; None: not enforced")
    tpm: int = Field(ge=0, description="Tokens per minute, counted as Bedrock counts them")
    tpd: int | None = Field(None, ge=0, description="Tokens per day; None: tpm x 1,440")
    output_burndown: int = Field(1, ge=1, description="Quota tokens one output token uses")
    source: str = Field(min_length=1)
    as_of: str = Field(min_length=1, description="Date the quota was read, ISO 8601")

    @property
    def tokens_per_day(self) -> int:
        """The daily token quota (Bedrock's default when the entry sets none)."""
        return self.tpd if self.tpd is not None else self.tpm * MINUTES_PER_DAY


class QuotaFile(BaseModel):
    """The quotas file: notes, then Region to model id to entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    notes: list[str] = Field(default_factory=list)
    regions: dict[str, dict[str, QuotaEntry]]


class QuotaTable:
    """Looks up a model id's quotas in a Region; a model without an entry has None."""

    def __init__(self, regions: dict[str, dict[str, QuotaEntry]]) -> None:
        self._regions = {region: dict(models) for region, models in regions.items()}

    @classmethod
    def load(cls, path: Path | str | None = None) -> QuotaTable:
        """Load a quotas file (the shipped table when ``path`` is None)."""
        file = Path(path) if path else DEFAULT_QUOTAS_FILE
        data = QuotaFile.model_validate(json.loads(file.read_text(encoding="utf-8")))
        return cls(data.regions)

    @property
    def regions(self) -> list[str]:
        """Every Region of the table, sorted."""
        return sorted(self._regions)

    def models(self, region: str) -> list[str]:
        """Every model id with quotas in ``region``, sorted."""
        return sorted(self._regions.get(region, {}))

    def quota(self, model_id: str, region: str) -> QuotaEntry | None:
        """The quotas of exactly this model or profile id (None: not in the table)."""
        return self._regions.get(region, {}).get(model_id)

    def output_burndown(self, model_id: str, region: str) -> int:
        """Quota tokens per output token: the id's, else its base model's, else 1."""
        entry = self.quota(model_id, region) or self.quota(base_model_id(model_id), region)
        return entry.output_burndown if entry is not None else 1


@lru_cache(maxsize=8)
def load_quotas(path: str | None = None) -> QuotaTable:
    """Cached ``QuotaTable.load``."""
    return QuotaTable.load(path)
