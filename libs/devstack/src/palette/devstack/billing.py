"""The emulator's record of every billed call (what the cloud bill would show)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any


class BillingLog:
    """Billed calls in memory, optionally appended to a JSONL file as well.

    The file is an append-only audit trail: clearing the log empties the
    in-memory list only.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self._entries: list[dict[str, Any]] = []
        self._file: IO[str] | None = None
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file = Path(path).open("a", encoding="utf-8")  # noqa: SIM115

    def record(
        self,
        request_id: str,
        model_id: str,
        input_tokens: int,
        output_tokens: int,
        request_metadata: dict[str, str],
        started_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Append one billed call and return its entry.

        ``at`` is when the call was billed (its answer was ready); ``started_at``
        when its request arrived (default: the same moment).
        """
        now = datetime.now(UTC)
        entry: dict[str, Any] = {
            "request_id": request_id,
            "model_id": model_id,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "started_at": (started_at or now).isoformat(),
            "at": now.isoformat(),
            "request_metadata": request_metadata,
        }
        self._entries.append(entry)
        if self._file is not None:
            self._file.write(json.dumps(entry) + "\n")
            self._file.flush()
        return entry

    def __len__(self) -> int:
        return len(self._entries)

    def entries(
        self, offset: int = 0, metadata: dict[str, str] | None = None
    ) -> list[dict[str, Any]]:
        """Entries from ``offset`` on, oldest first, whose request metadata has ``metadata``."""
        entries = self._entries[offset:]
        if not metadata:
            return entries
        wanted = metadata.items()
        return [e for e in entries if wanted <= e["request_metadata"].items()]

    def clear(self) -> int:
        """Forget every entry; return how many there were."""
        count = len(self._entries)
        self._entries = []
        return count

    def summary(self, metadata: dict[str, str] | None = None) -> dict[str, Any]:
        """Calls and tokens in total and per model (of the entries ``metadata`` selects)."""
        by_model: dict[str, dict[str, int]] = {}
        for entry in self.entries(0, metadata):
            row = by_model.setdefault(
                entry["model_id"], {"calls": 0, "input_tokens": 0, "output_tokens": 0}
            )
            row["calls"] += 1
            row["input_tokens"] += entry["input_tokens"]
            row["output_tokens"] += entry["output_tokens"]
        return {
            "calls": sum(row["calls"] for row in by_model.values()),
            "input_tokens": sum(row["input_tokens"] for row in by_model.values()),
            "output_tokens": sum(row["output_tokens"] for row in by_model.values()),
            "by_model": by_model,
        }

    def close(self) -> None:
        """Close the JSONL file, if any."""
        if self._file is not None:
            self._file.close()
            self._file = None
