"""Body of ``GET /usage``: a user's spend by day, model, kind or template."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from pydantic import Field

from palette.gateway.schemas.base import Reply


class UsageGroupBy(StrEnum):
    """What the rows of ``GET /usage`` are grouped by."""

    DAY = "day"
    MODEL = "model"
    KIND = "kind"
    TEMPLATE = "template"


class UsageKind(StrEnum):
    """What the money was spent on."""

    JOB = "job"
    PREVIEW = "preview"


class UsageRow(Reply):
    """Spend of one group and kind."""

    key: str | None = Field(
        description="The group: a day (`YYYY-MM-DD`), a model id, the kind, or a template id. "
        "Null for spend charged at a worst case without usage detail (by model), or for "
        "work of no template (by template)."
    )
    kind: UsageKind
    cost_usd: str = Field(description="Settled spend, exact, in USD.")
    calls: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int = Field(0, description="Input tokens read from the prompt cache.")
    cache_write_tokens: int = Field(0, description="Input tokens written to the prompt cache.")
    items: int = Field(description="Jobs or previews that spent in this group.")


class UsageView(Reply):
    """Answer of ``GET /usage``: the caller's own spend over whole UTC days."""

    first_day: date = Field(description="The first day counted (`from`).")
    last_day: date = Field(description="The last day counted (`to`), included.")
    group_by: UsageGroupBy
    total_usd: str = Field(description="Jobs and previews together.")
    job_usd: str
    preview_usd: str
    preview_reserved_usd: str = Field(
        description="Held right now for previews still running: not spent (yet), but no "
        "longer available to new previews."
    )
    rows: list[UsageRow] = Field(description="By group, then kind (jobs first).")
