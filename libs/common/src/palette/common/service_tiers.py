"""How a job pays for its calls: online at a service tier, or as Bedrock batch jobs.

Bedrock prices the same tokens differently by how they are served:

- the **service tier** of an online Converse call (``serviceTier: {"type": T}``):
  ``default`` (standard, the model's on-demand price), ``flex`` (cheaper, slower
  when Bedrock is busy) and ``priority`` (dearer, served first);
- **batch** inference (``CreateModelInvocationJob``): JSONL in S3, about half the
  on-demand price.

The pricing table (``pricing.json``) gives each model's standard price and, where
Bedrock offers them, ``batch`` and ``service_tiers`` prices (``TierPrice``), each
with its source and date. ``rated_table`` turns the table into the one a job's
calls are priced at, so every place that prices a call (the generator's lease
guard, accounting's ledger, the scheduler's and the gateway's estimates) asks the
same table the same way, exactly, in picodollars. No I/O here.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from palette.common.money import MoneyError, usd_to_picos

if TYPE_CHECKING:
    from palette.common.pricing import PricingTable
    from palette.common.steps import Step


class ServiceTier(StrEnum):
    """The ``serviceTier`` of an online Converse call (botocore's ``ServiceTierType``)."""

    DEFAULT = "default"
    FLEX = "flex"
    PRIORITY = "priority"


class JobMode(StrEnum):
    """How a job calls the model."""

    ONLINE = "online"
    """One Converse call per record and step (today's way), at the job's service tier."""
    BATCH = "batch"
    """Bedrock batch inference jobs at the batch price, step by step (``generator.batch_run``)."""


BATCH = "batch"
"""The rate name of batch inference, beside the service tiers' (``rate_names``)."""

Rate = ServiceTier | Literal["batch"]
"""What a usage row is billed at: a service tier, or batch inference."""


def job_rate(mode: JobMode | str, tier: ServiceTier | str) -> str:
    """The rate a job's calls are priced at: ``batch`` in batch mode, else its tier."""
    return BATCH if mode == JobMode.BATCH else ServiceTier(tier).value


def rate_names() -> tuple[str, ...]:
    """Every way a token can be priced: the service tiers, then batch."""
    return (*(tier.value for tier in ServiceTier), BATCH)


def _exact_in_picos(value: Decimal) -> Decimal:
    try:
        usd_to_picos(value / 10**6)
    except MoneyError as exc:
        raise ValueError("a price may have at most six decimals per million tokens") from exc
    return value


Price = Annotated[Decimal, Field(ge=0), AfterValidator(_exact_in_picos)]
"""USD per million tokens, exact in picodollars per token."""


class TierPrice(BaseModel):
    """A model's price at one service tier or in batch, in USD per million tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_per_million: Price
    output_per_million: Price
    source: str = Field(min_length=1)
    as_of: str = Field(min_length=1, description="Date the price was read, ISO 8601")


class UnpricedRateError(LookupError):
    """A model that Bedrock does not serve (or we have no price for) at a tier or in batch.

    ``cache``: the model has a price there, but none for prompt caching (a
    ``cache_prompt`` step): cache prices are the default tier's only.
    """

    def __init__(self, model_id: str, rate: str, cache: bool = False) -> None:
        where = "in batch" if rate == BATCH else f"at the {rate!r} service tier"
        what = "no prompt-caching price (cache_prompt)" if cache else "no price"
        super().__init__(f"model {model_id!r} has {what} {where} in the pricing table")
        self.model_id = model_id
        self.rate = rate


def rated_table(table: PricingTable, rate: str) -> PricingTable:
    """The pricing table of one rate (``default``, ``flex``, ``priority`` or ``batch``).

    ``default`` is the table itself. Any other holds the models that have a
    price at that rate (their inference profiles too); a model without one is
    unknown there (``UnknownModelError``: refused before any call). Built once
    per table and rate.
    """
    if rate == ServiceTier.DEFAULT.value:
        return table
    if rate not in rate_names():
        raise ValueError(f"unknown rate {rate!r}: one of {', '.join(rate_names())}")
    return table.rated(rate)


def require_rate(
    table: PricingTable,
    rate: str,
    model_ids: list[str] | tuple[str, ...],
    steps: Iterable[Step] = (),
) -> None:
    """Raise UnpricedRateError for the first model without a price at ``rate``.

    The models of ``steps`` with ``cache_prompt`` need a cache price at ``rate``
    too (only the default tier has them: a cached step is refused at flex,
    priority and in batch).
    """
    for model_id in model_ids:
        table.price(model_id)  # an unknown model is refused as such first
        if rate != ServiceTier.DEFAULT.value and model_id not in rated_table(table, rate):
            raise UnpricedRateError(model_id, rate)
    for step in steps:
        if step.cache_prompt and rated_table(table, rate).cache(step.model) is None:
            raise UnpricedRateError(step.model, rate, cache=True)


def rate_costs(
    table: PricingTable, model_id: str, input_tokens: int, output_tokens: int
) -> dict[str, int | None]:
    """The cost of the same usage at every rate (None where the model has no price there)."""
    costs: dict[str, int | None] = {}
    for rate in rate_names():
        rated = rated_table(table, rate)
        costs[rate] = (
            rated.cost(model_id, input_tokens, output_tokens) if model_id in rated else None
        )
    return costs
