"""How the generators share each model's quota now, from ``quota_shares`` (pure, no I/O).

The generators write ``quota_shares``: one document per (Region, model id, generator) while they
have calls for the model (``palette.generator.quota_shares``); a reader keeps the
documents whose ``expires`` is still ahead and sums them per model.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class QuotaUse:
    """One model's quota as the live generators share it."""

    model: str
    quota_tpm: int | None
    generators: int
    share_tpm: int | None
    rate_tpm: int | None
    used_tpm: int
    waiting: int


def _total(values: list[Any]) -> int | None:
    return None if any(v is None for v in values) else round(sum(float(v) for v in values))


def quota_uses(docs: Iterable[Mapping[str, Any]]) -> list[QuotaUse]:
    """Per model (sorted), the live holders' documents summed."""
    by_model: dict[str, list[Mapping[str, Any]]] = {}
    for doc in docs:
        by_model.setdefault(str(doc["model"]), []).append(doc)
    uses = []
    for model, holders in sorted(by_model.items()):
        quota = holders[0].get("quota")
        uses.append(
            QuotaUse(
                model=model,
                quota_tpm=None if quota is None else round(float(quota)),
                generators=len(holders),
                share_tpm=_total([h.get("share") for h in holders]),
                rate_tpm=_total([h.get("rate") for h in holders]),
                used_tpm=round(sum(float(h.get("used") or 0) for h in holders)),
                waiting=sum(int(h.get("waiting") or 0) for h in holders),
            )
        )
    return uses
