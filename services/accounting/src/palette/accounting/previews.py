"""Preview spend with no I/O: the day a preview counts on, its exact charge, a day's standing.

A user's previews draw on a preview budget per UTC day (the gateway's
``PALETTE_GATEWAY_PREVIEW_BUDGET_USD``, sent as ``limit`` with each
reservation). Per owner and day, ``committed`` is what is spent plus what is
reserved for previews still running; a reservation is granted only while
``committed + amount <= limit``. All amounts are integer picodollars.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from palette.accounting import ledger
from palette.common.messages import StepUsage
from palette.common.pricing import PricingTable


def day_of(at: datetime) -> date:
    """The UTC day of an instant (a naive one is taken as UTC)."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).date()


def budget_key(owner: str, day: date) -> str:
    """``_id`` of an owner's preview budget document of ``day``."""
    return f"{owner}/{day.isoformat()}"


def expiry(deadline: datetime, hold_seconds: float) -> datetime:
    """When a reservation no preview settled is released: ``hold_seconds`` after its deadline."""
    return deadline + timedelta(seconds=hold_seconds)


@dataclass(frozen=True, slots=True)
class Charge:
    """What a preview costs: usage per model (each entry priced), the total and its unknown part."""

    usage: list[dict[str, Any]]
    cost: int
    unreconciled: int


def charge(usage: Iterable[StepUsage], unknown_worst: int, pricing: PricingTable) -> Charge:
    """The exact charge of a preview: its calls priced per model, plus ``unknown_worst``.

    Raises:
        UnknownModelError: a model of the usage has no price.
    """
    by_model = ledger.usage_map(usage, pricing, key=lambda u: u.model_id)
    entries = [by_model[model] for model in sorted(by_model)]
    return Charge(entries, sum(e["cost"] for e in entries) + unknown_worst, unknown_worst)


@dataclass(frozen=True, slots=True)
class Standing:
    """An owner's preview budget of one day: spent, reserved and what is left of ``limit``."""

    limit: int
    spent: int
    reserved: int

    @property
    def available(self) -> int:
        """What is left for new reservations (never negative)."""
        return max(0, self.limit - self.spent - self.reserved)

    def fits(self, amount: int) -> bool:
        """Whether a reservation of ``amount`` stays within the limit."""
        return self.spent + self.reserved + amount <= self.limit


def standing(doc: dict[str, Any] | None, limit: int) -> Standing:
    """The standing of a budget document (None: nothing spent or reserved yet that day)."""
    if doc is None:
        return Standing(limit, 0, 0)
    spent = int(doc.get("spent", 0))
    return Standing(limit, spent, int(doc.get("committed", 0)) - spent)
