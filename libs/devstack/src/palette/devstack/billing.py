"""The emulator's record of every billed call (what the cloud bill would show)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from palette.devstack.eventlog import EventLog

SUMMED = ("calls", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
"""What a billing summary adds up, per model and in all."""


class BillingLog(EventLog):
    """Billed calls in memory, optionally appended to a JSONL file as well.

    The file is an append-only audit trail: clearing the log empties the
    in-memory list only.
    """

    def record(
        self,
        request_id: str,
        model_id: str,
        input_tokens: int,
        output_tokens: int,
        request_metadata: dict[str, str],
        started_at: datetime | None = None,
        service_tier: str = "default",
        cache: tuple[int, int] = (0, 0),
    ) -> dict[str, Any]:
        """Append one billed call and return its entry.

        ``at`` is when the call was billed (its answer was ready); ``started_at``
        when its request arrived (default: the same moment). ``service_tier`` is
        the rate it is billed at: ``default``, ``flex``, ``priority``, or ``batch``
        for an entry of a batch inference job. ``cache``: the input tokens read
        from and written to the prompt cache (``cache_read_tokens``,
        ``cache_write_tokens``: not in ``input_tokens``, billed at their prices).
        """
        now = datetime.now(UTC)
        entry: dict[str, Any] = {
            "request_id": request_id,
            "model_id": model_id,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "cache_read_tokens": cache[0],
            "cache_write_tokens": cache[1],
            "started_at": (started_at or now).isoformat(),
            "at": now.isoformat(),
            "request_metadata": request_metadata,
            "service_tier": service_tier,
        }
        return self.append(entry)

    def summary(self, metadata: dict[str, str] | None = None) -> dict[str, Any]:
        """Calls and tokens in total and per model (of the entries ``metadata`` selects)."""
        by_model: dict[str, dict[str, int]] = {}
        by_tier: dict[str, dict[str, int]] = {}
        for entry in self.entries(0, metadata):
            tier = entry.get("service_tier", "default")
            for row in (
                by_model.setdefault(entry["model_id"], dict.fromkeys(SUMMED, 0)),
                by_tier.setdefault(tier, dict.fromkeys(SUMMED, 0)),
            ):
                row["calls"] += 1
                for name in SUMMED[1:]:
                    row[name] += int(entry.get(name, 0))
        totals: dict[str, Any] = {
            name: sum(row[name] for row in by_model.values()) for name in SUMMED
        }
        return {**totals, "by_model": by_model, "by_service_tier": by_tier}
