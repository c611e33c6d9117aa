"""What each quota'd model took from its quota, second by second (the emulator's meter).

Pure bookkeeping, no I/O: the emulator tells it about every request to a model
whose quota it enforces, and ``GET /_emulator/quotas/usage`` serves the rows. One
row per model id and wall-clock second (``t``, seconds since the epoch), with:

- ``admitted``: requests admitted in that second, and ``reserved`` the tokens
  they reserved (input + maxTokens);
- ``used``: the quota tokens those same requests used once they ended (input +
  output x burndown; kept on the second they were *admitted* in, so a rate over
  a span of seconds counts the requests the quota let in during it);
- ``throttled``: requests refused for a quota in that second;
- ``tpm_level_min``: the lowest level of the model's tokens-per-minute bucket seen
  at any request of that second (None: TPM not enforced), which shows when a
  bucket that started full has been drained.

Rows older than ``retention_seconds`` are dropped as new ones come.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any


class QuotaUsage:
    """Per-second rows of every quota'd model (see the module's note)."""

    def __init__(self, retention_seconds: int = 7_200) -> None:
        self.retention_seconds = retention_seconds
        self._rows: dict[str, OrderedDict[int, dict[str, Any]]] = {}

    def _row(self, model_id: str, second: int) -> dict[str, Any]:
        rows = self._rows.setdefault(model_id, OrderedDict())
        row = rows.get(second)
        if row is None:
            row = rows[second] = {
                "t": second,
                "admitted": 0,
                "throttled": 0,
                "reserved": 0,
                "used": 0,
                "tpm_level_min": None,
            }
            while rows and next(iter(rows)) < second - self.retention_seconds:
                rows.popitem(last=False)
        return row

    @staticmethod
    def _level(row: dict[str, Any], level: float | None) -> None:
        if level is not None and (row["tpm_level_min"] is None or level < row["tpm_level_min"]):
            row["tpm_level_min"] = round(level, 3)

    def admitted(self, model_id: str, second: int, reserved: int, level: float | None) -> None:
        """A request admitted in ``second``; ``level``: its TPM bucket's level after it."""
        row = self._row(model_id, second)
        row["admitted"] += 1
        row["reserved"] += reserved
        self._level(row, level)

    def throttled(self, model_id: str, second: int, level: float | None) -> None:
        """A request refused for a quota in ``second``."""
        row = self._row(model_id, second)
        row["throttled"] += 1
        self._level(row, level)

    def used(self, model_id: str, admitted_second: int, tokens: int) -> None:
        """The quota tokens a request admitted in ``admitted_second`` used, once it ended."""
        rows = self._rows.get(model_id)
        if rows is not None and admitted_second in rows:
            rows[admitted_second]["used"] += tokens

    def rows(self, model_id: str | None = None, since: int = 0) -> dict[str, list[dict[str, Any]]]:
        """Per model id (or only ``model_id``), its rows from second ``since`` on, oldest first."""
        chosen = self._rows
        if model_id is not None:
            chosen = {model_id: self._rows.get(model_id, OrderedDict())}
        return {
            model: [dict(row) for t, row in rows.items() if t >= since]
            for model, rows in chosen.items()
            if rows
        }

    def clear(self) -> int:
        """Forget every row; returns how many there were."""
        count = sum(len(rows) for rows in self._rows.values())
        self._rows = {}
        return count
