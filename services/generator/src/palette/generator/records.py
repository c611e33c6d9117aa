"""Finished records, part lines and part metadata, and grouping into parts.

Pure logic, no I/O. A part holds a contiguous run of records
``[first, first + n)`` with ``n <= part_size``; see docs/internals.md.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from palette.common.keys import record_id
from palette.generator.usage import UsageTally


@dataclass(slots=True)
class FinishedRecord:
    """One generated record: every step's output, model and token usage."""

    index: int
    seed_index: int
    outputs: dict[str, str] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    usage: dict[str, tuple[int, int]] = field(default_factory=dict)

    def line(self, job_id: str) -> dict[str, Any]:
        """The record as a part line object."""
        return {
            "id": record_id(job_id, self.index),
            "index": self.index,
            "seed_index": self.seed_index,
            "outputs": self.outputs,
            "models": self.models,
            "usage": {step: [i, o] for step, (i, o) in self.usage.items()},
        }

    def tally(self) -> UsageTally:
        """The record's usage as a tally (one call per step)."""
        tally = UsageTally()
        for step, (i, o) in self.usage.items():
            tally.add(step, self.models[step], i, o)
        return tally

    @classmethod
    def from_line(cls, obj: Mapping[str, Any]) -> FinishedRecord:
        """Parse a part line object; ValueError when it is not one."""
        try:
            index, seed = obj["index"], obj["seed_index"]
            outputs, models, usage = obj["outputs"], obj["models"], obj["usage"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a part line: missing {exc}") from None
        if not (isinstance(index, int) and isinstance(seed, int) and index >= 0):
            raise ValueError("a part line needs integer index and seed_index")
        if not all(isinstance(v, dict) for v in (outputs, models, usage)):
            raise ValueError("outputs, models and usage of a part line must be objects")
        pairs: dict[str, tuple[int, int]] = {}
        for step, value in usage.items():
            if not (isinstance(value, list) and len(value) == 2):
                raise ValueError(f"usage of step {step!r} must be [input, output]")
            pairs[str(step)] = (int(value[0]), int(value[1]))
        return cls(
            index=index,
            seed_index=seed,
            outputs={str(k): str(v) for k, v in outputs.items()},
            models={str(k): str(v) for k, v in models.items()},
            usage=pairs,
        )


def encode_part(job_id: str, records: Sequence[FinishedRecord]) -> bytes:
    """The JSONL body of a part."""
    return b"".join(
        json.dumps(r.line(job_id), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
        for r in records
    )


def decode_line(raw: bytes | str) -> FinishedRecord:
    """Parse one line of a part; ValueError when it is not a part line."""
    obj = json.loads(raw)
    if not isinstance(obj, dict):
        raise ValueError("a part line must be a JSON object")
    return FinishedRecord.from_line(obj)


@dataclass(frozen=True, slots=True)
class PartMeta:
    """The S3 user metadata of a part."""

    records: int
    lease: str
    message: str
    usage: UsageTally

    def to_metadata(self) -> dict[str, str]:
        """As S3 user metadata (ASCII strings)."""
        return {
            "records": str(self.records),
            "lease": self.lease,
            "message": self.message,
            "usage": self.usage.encode(),
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, str]) -> PartMeta:
        """Parse S3 user metadata; ValueError when a field is missing or bad."""
        try:
            records = int(metadata["records"])
            lease, message = metadata["lease"], metadata["message"]
            usage = UsageTally.decode(metadata["usage"])
        except KeyError as exc:
            raise ValueError(f"part metadata lacks {exc}") from None
        if records < 1 or not lease or not message:
            raise ValueError("part metadata has a bad records, lease or message")
        return cls(records=records, lease=lease, message=message, usage=usage)


def contiguous_runs(indices: Iterable[int], part_size: int) -> list[tuple[int, int]]:
    """Split indices into runs ``(first, n)`` of consecutive indices, ``n <= part_size``."""
    if part_size < 1:
        raise ValueError("part_size must be at least 1")
    runs: list[tuple[int, int]] = []
    for index in sorted(set(indices)):
        if runs and runs[-1][0] + runs[-1][1] == index and runs[-1][1] < part_size:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((index, 1))
    return runs


class RunAssembler:
    """Hands out runs of finished records as soon as they can no longer grow.

    ``order`` is the ascending list of indices the attempt generates. Each is
    resolved once, either finished (a record) or dropped (failed, abandoned).
    Runs are cut only inside the prefix of ``order`` that is fully resolved,
    at ``part_size``, at a dropped index or where indices are not consecutive,
    so every part is the same whatever order records finish in.
    """

    def __init__(self, order: Sequence[int], part_size: int) -> None:
        if part_size < 1:
            raise ValueError("part_size must be at least 1")
        self._order = list(order)
        self._size = part_size
        self._resolved: dict[int, FinishedRecord | None] = {}
        self._cursor = 0
        self._run: list[FinishedRecord] = []

    def finish(self, record: FinishedRecord) -> None:
        """A record is finished."""
        self._resolve(record.index, record)

    def drop(self, index: int) -> None:
        """An index will not be finished in this attempt."""
        self._resolve(index, None)

    def _resolve(self, index: int, value: FinishedRecord | None) -> None:
        if index in self._resolved:
            raise ValueError(f"index {index} is already resolved")
        self._resolved[index] = value

    def ready(self) -> list[list[FinishedRecord]]:
        """Runs that are complete now (call after each finish/drop)."""
        closed: list[list[FinishedRecord]] = []
        while self._cursor < len(self._order) and self._order[self._cursor] in self._resolved:
            self._take(self._resolved.pop(self._order[self._cursor]), closed)
            self._cursor += 1
        if len(self._run) >= self._size:
            closed.append(self._run)
            self._run = []
        return closed

    def rest(self) -> list[list[FinishedRecord]]:
        """At the end: every finished record not handed out yet, grouped into runs."""
        closed = self.ready()
        while self._cursor < len(self._order):
            self._take(self._resolved.pop(self._order[self._cursor], None), closed)
            self._cursor += 1
        if self._run:
            closed.append(self._run)
            self._run = []
        return closed

    def _take(self, record: FinishedRecord | None, closed: list[list[FinishedRecord]]) -> None:
        run = self._run
        if record is None or (
            run and (run[-1].index + 1 != record.index or len(run) >= self._size)
        ):
            if run:
                closed.append(run)
            self._run = run = []
        if record is not None:
            run.append(record)
