"""The emulator's logs of calls (billed, throttled): in memory, optionally appended to JSONL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any


class EventLog:
    """Entries in memory, optionally appended to a JSONL file as well.

    The file is an append-only audit trail: clearing the log empties the
    in-memory list only. Each entry has a ``request_metadata`` map to select by.
    """

    def __init__(self, path: Path | str | None = None) -> None:
        self._entries: list[dict[str, Any]] = []
        self._file: IO[str] | None = None
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file = Path(path).open("a", encoding="utf-8")  # noqa: SIM115

    def append(self, entry: dict[str, Any]) -> dict[str, Any]:
        """Keep one entry (and write it to the file) and return it."""
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

    def close(self) -> None:
        """Close the JSONL file, if any."""
        if self._file is not None:
            self._file.close()
            self._file = None


class ThrottleLog(EventLog):
    """Every call refused for a quota: model, time, which quota, tokens it asked."""

    def record(
        self,
        request_id: str,
        model_id: str,
        reason: str,
        tokens: int,
        request_metadata: dict[str, str],
    ) -> dict[str, Any]:
        """Append one throttled call and return its entry."""
        return self.append(
            {
                "request_id": request_id,
                "model_id": model_id,
                "reason": reason,
                "tokens": tokens,
                "at": datetime.now(UTC).isoformat(),
                "request_metadata": request_metadata,
            }
        )
