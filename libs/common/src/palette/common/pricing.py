"""Model prices as data, and the exact cost of token usage.

The table ships as ``pricing.json`` beside this module; ``PALETTE_PRICING_FILE``
(or an explicit path) replaces it. Each entry gives USD per million input and
output tokens, with the source and date of the price; where Bedrock offers
them its ``batch`` price and its ``service_tiers`` prices (``flex``, ``priority``;
the entry's own price is the ``default`` tier's): ``palette.common.service_tiers``;
and for a model that supports prompt caching its ``cache`` entry: USD per million
tokens read from and written to the cache, the minimum cacheable prefix in tokens,
source and date. A model without one has no prompt caching. Cache prices are the
default tier's: a model priced at another tier or in batch has no ``cache`` there
(``PriceEntry.at_rate``), so a ``cache_prompt`` step is refused at those rates
before any call. Cross-region inference
profiles (``us.``, ``eu.``, ``apac.``, ``global.`` ids) are listed one by one under
``profiles``, each naming the base model whose price it is charged at.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from palette.common.model_ids import base_model_id, profile_prefix
from palette.common.money import usd_to_picos
from palette.common.service_tiers import BATCH, Price, ServiceTier, TierPrice

DEFAULT_PRICING_FILE = Path(__file__).with_name("pricing.json")


class UnknownModelError(LookupError):
    """A model that has no price: it is refused before any call."""

    def __init__(self, model_id: str) -> None:
        super().__init__(f"model {model_id!r} has no price in the pricing table")
        self.model_id = model_id


class CacheEntry(BaseModel):
    """A model's prompt-caching prices (USD per million tokens) and minimum prefix."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    read_per_million: Price = Field(description="Tokens read from the cache")
    write_per_million: Price = Field(description="Tokens written to the cache")
    min_tokens: int = Field(ge=1, description="Fewest tokens before a cache point that cache")
    source: str = Field(min_length=1)
    as_of: str = Field(min_length=1, description="Date the prices were read, ISO 8601")


class PriceEntry(TierPrice):
    """One model's price, in USD per million tokens (the default tier's), and its other rates."""

    batch: TierPrice | None = Field(None, description="Batch inference price; null: none")
    service_tiers: dict[ServiceTier, TierPrice] = Field(
        default_factory=dict,
        description="Prices at the flex and priority tiers Bedrock offers the model "
        "(the entry's own price is the default tier's)",
    )

    cache: CacheEntry | None = Field(
        default=None,
        description="Prompt-caching prices at the default tier; None: no prompt caching",
    )

    def at_rate(self, rate: str) -> PriceEntry | None:
        """This entry priced at a service tier or in batch (None: no price there).

        Prompt caching is priced at the default tier only: at any other rate the
        entry has no ``cache``.
        """
        if rate == ServiceTier.DEFAULT.value:
            return self
        found = self.batch if rate == BATCH else self.service_tiers.get(ServiceTier(rate))
        if found is None:
            return None
        return self.model_copy(
            update={
                "input_per_million": found.input_per_million,
                "output_per_million": found.output_per_million,
                "source": found.source,
                "as_of": found.as_of,
                "cache": None,
            }
        )


class ProfileEntry(BaseModel):
    """A cross-region inference profile, priced as its base model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    priced_as: str = Field(min_length=1, description="The base model id whose price applies")
    source: str = Field(min_length=1)
    as_of: str = Field(min_length=1, description="Date the fact was read, ISO 8601")


class PricingFile(BaseModel):
    """The pricing file: model id to price entry, and profile id to its base model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    models: dict[str, PriceEntry]
    profiles: dict[str, ProfileEntry] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _profiles_name_priced_base_models(self) -> PricingFile:
        for profile_id, entry in self.profiles.items():
            if profile_prefix(profile_id) is None or base_model_id(profile_id) != entry.priced_as:
                raise ValueError(
                    f"profile {profile_id!r} must be {entry.priced_as!r} behind one of the "
                    "prefixes us., eu., apac., global."
                )
            if entry.priced_as not in self.models:
                raise ValueError(
                    f"profile {profile_id!r} is priced as unpriced {entry.priced_as!r}"
                )
        return self


@dataclass(frozen=True, slots=True)
class TokenPrice:
    """Price of one token, in picodollars (exact integers).

    ``cache_read_picos`` and ``cache_write_picos`` (None: the input price) price
    the tokens a call read from and wrote to the prompt cache.
    """

    input_picos: int
    output_picos: int
    cache_read_picos: int | None = None
    cache_write_picos: int | None = None

    def cost(
        self, input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0
    ) -> int:
        """Exact cost of a call in picodollars (cache tokens are not in ``input_tokens``)."""
        total = input_tokens * self.input_picos + output_tokens * self.output_picos
        if cache_read:
            total += cache_read * _or(self.cache_read_picos, self.input_picos)
        if cache_write:
            total += cache_write * _or(self.cache_write_picos, self.input_picos)
        return total

    def worst_input_picos(self, cached: bool) -> int:
        """The most an input token of a call can cost: a cached call may write every one."""
        if not cached:
            return self.input_picos
        return max(self.input_picos, _or(self.cache_write_picos, self.input_picos))


def _or(value: int | None, default: int) -> int:
    return default if value is None else value


def token_price(entry: PriceEntry) -> TokenPrice:
    """An entry's per-token prices in picodollars."""
    cache = entry.cache
    return TokenPrice(
        input_picos=usd_to_picos(entry.input_per_million / 10**6),
        output_picos=usd_to_picos(entry.output_per_million / 10**6),
        cache_read_picos=None if cache is None else usd_to_picos(cache.read_per_million / 10**6),
        cache_write_picos=None if cache is None else usd_to_picos(cache.write_per_million / 10**6),
    )


class PricingTable:
    """Looks up exact per-token prices; unknown models raise UnknownModelError."""

    def __init__(
        self, entries: dict[str, PriceEntry], profiles: dict[str, ProfileEntry] | None = None
    ) -> None:
        self._entries = dict(entries)
        self.profiles = dict(profiles or {})
        for profile_id, profile in self.profiles.items():
            self._entries[profile_id] = entries[profile.priced_as]
        self._prices = {model: token_price(entry) for model, entry in self._entries.items()}
        self._base = dict(entries)
        self._rated: dict[str, PricingTable] = {}

    @classmethod
    def load(cls, path: Path | str | None = None) -> PricingTable:
        """Load a pricing file (the shipped table when ``path`` is None)."""
        file = Path(path) if path else DEFAULT_PRICING_FILE
        data = PricingFile.model_validate(json.loads(file.read_text(encoding="utf-8")))
        return cls(data.models, data.profiles)

    @property
    def models(self) -> list[str]:
        """Every priced model and inference profile id, sorted."""
        return sorted(self._prices)

    def entry(self, model_id: str) -> PriceEntry:
        """The price entry of a model (a profile's is its base model's)."""
        try:
            return self._entries[model_id]
        except KeyError:
            raise UnknownModelError(model_id) from None

    def price(self, model_id: str) -> TokenPrice:
        """Per-token price of a model in picodollars."""
        try:
            return self._prices[model_id]
        except KeyError:
            raise UnknownModelError(model_id) from None

    def cost(
        self,
        model_id: str,
        input_tokens: int,
        output_tokens: int,
        cache_read: int = 0,
        cache_write: int = 0,
    ) -> int:
        """Exact cost of a call in picodollars."""
        return self.price(model_id).cost(input_tokens, output_tokens, cache_read, cache_write)

    def cache(self, model_id: str) -> CacheEntry | None:
        """A model's prompt-caching entry (None: the model has no prompt caching)."""
        return self.entry(model_id).cache

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._prices

    def rated(self, rate: str) -> PricingTable:
        """The table of the models priced at a service tier or in batch, at that price.

        Use ``palette.common.service_tiers.rated_table``; built once per rate.
        """
        table = self._rated.get(rate)
        if table is None:
            entries = {
                model: rated
                for model, entry in self._base.items()
                if (rated := entry.at_rate(rate)) is not None
            }
            profiles = {p: e for p, e in self.profiles.items() if e.priced_as in entries}
            table = self._rated[rate] = PricingTable(entries, profiles)
        return table

    def require(self, model_ids: Iterable[str]) -> None:
        """Raise UnknownModelError for the first model without a price."""
        for model_id in model_ids:
            self.price(model_id)


@lru_cache(maxsize=8)
def load_pricing(path: str | None = None) -> PricingTable:
    """Cached ``PricingTable.load``."""
    return PricingTable.load(path)
