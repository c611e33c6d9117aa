"""Finished records, part lines and part metadata, and grouping into parts.

Pure logic, no I/O. A part holds a contiguous run of records
``[first, first + n)`` with ``n <= part_size``; see docs/internals.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from palette.common.keys import record_id
from palette.generator.usage import RetryTally, UsageTally


@dataclass(slots=True)
class FinishedRecord:
    """One generated record: every step's output, model and token usage.

    An incomplete record (``complete`` false) has the outputs of the steps that
    ran and none of the later ones: its job stopped, or its attempt ended,
    before they did. ``carried`` names steps whose calls an earlier attempt
    made and reported (a record resumed from its incomplete object): they are
    in the record but not in this attempt's usage.
    """

    index: int
    seed_index: int
    outputs: dict[str, Any] = field(default_factory=dict)
    """Step id -> its text, or the JSON object a structured step answered."""
    models: dict[str, str] = field(default_factory=dict)
    usage: dict[str, tuple[int, int]] = field(default_factory=dict)
    cached: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Step id -> (cache read, cache write) tokens of its call (``cache`` of a part line)."""
    complete: bool = True
    carried: frozenset[str] = frozenset()
    variables: dict[str, Any] = field(default_factory=dict)
    """The template's variables as this record drew them (``vars`` of a part line)."""
    rates: dict[str, str] = field(default_factory=dict)
    """Steps billed at a rate other than the attempt's (``UsageTally.add``'s ``rate``)."""
    invalid: dict[str, str] | None = None
    """``{"step", "error"}``: a step never answered valid output; the export rejects it."""

    def line(self, job_id: str) -> dict[str, Any]:
        """The record as a part line object (``vars`` only when the template has variables)."""
        line = {
            "id": record_id(job_id, self.index),
            "index": self.index,
            "seed_index": self.seed_index,
            "complete": self.complete,
            "outputs": self.outputs,
            "models": self.models,
            "usage": {step: [i, o] for step, (i, o) in self.usage.items()},
        }
        if self.cached:
            line["cache"] = {step: [r, w] for step, (r, w) in self.cached.items()}
        if self.variables:
            line["vars"] = self.variables
        if self.invalid is not None:
            line["invalid"] = self.invalid
        return line

    def tally(self) -> UsageTally:
        """This attempt's usage of the record as a tally (one call per step, carried ones not)."""
        tally = UsageTally()
        for step, (i, o) in self.usage.items():
            if step not in self.carried:
                read, write = self.cached.get(step, (0, 0))
                rate = self.rates.get(step, "")
                tally.add(step, self.models[step], i, o, 1, read, write, rate=rate)
        return tally

    def resumed(self) -> FinishedRecord:
        """A new attempt's record that starts from this incomplete one's outputs."""
        return FinishedRecord(
            index=self.index,
            seed_index=self.seed_index,
            outputs=dict(self.outputs),
            models=dict(self.models),
            usage=dict(self.usage),
            cached=dict(self.cached),
            carried=frozenset(self.outputs),
            variables=dict(self.variables),
        )

    @property
    def made_calls(self) -> bool:
        """Whether this attempt called the model for the record (a step not carried)."""
        return any(step not in self.carried for step in self.outputs)

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
        complete = obj.get("complete", True)  # parts written before the field was: complete
        if not isinstance(complete, bool):
            raise ValueError("complete of a part line must be true or false")
        variables = obj.get("vars", {})
        if not isinstance(variables, dict):
            raise ValueError("vars of a part line must be an object")
        invalid = obj.get("invalid")
        if invalid is not None and not isinstance(invalid, dict):
            raise ValueError("invalid of a part line must be an object")
        pairs = _pairs(usage, "usage", "[input, output]")
        cached = _pairs(obj.get("cache", {}), "cache", "[cache read, cache write]")
        return cls(
            index=index,
            seed_index=seed,
            outputs={str(k): v if isinstance(v, dict) else str(v) for k, v in outputs.items()},
            models={str(k): str(v) for k, v in models.items()},
            usage=pairs,
            cached=cached,
            complete=complete,
            variables={str(k): v for k, v in variables.items()},
            invalid={str(k): str(v) for k, v in invalid.items()} if invalid else None,
        )


def _pairs(value: Any, name: str, shape: str) -> dict[str, tuple[int, int]]:
    """A part line's ``{step: [a, b]}`` object; ValueError when it is not one."""
    if not isinstance(value, dict):
        raise ValueError(f"{name} of a part line must be an object")
    pairs: dict[str, tuple[int, int]] = {}
    for step, pair in value.items():
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ValueError(f"{name} of step {step!r} must be {shape}")
        pairs[str(step)] = (int(pair[0]), int(pair[1]))
    return pairs


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
    retries: RetryTally = field(default_factory=RetryTally)
    """Attempts throttled and retried since the attempt's previous part (announced with it)."""

    def to_metadata(self) -> dict[str, str]:
        """As S3 user metadata (ASCII strings)."""
        return {
            "records": str(self.records),
            "lease": self.lease,
            "message": self.message,
            "usage": self.usage.encode(),
            "retries": self.retries.encode(),
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
        # Parts written before retry counts were kept have none: zero.
        retries = RetryTally.decode(metadata.get("retries", "0,0"))
        if records < 1 or not lease or not message:
            raise ValueError("part metadata has a bad records, lease or message")
        return cls(records=records, lease=lease, message=message, usage=usage, retries=retries)


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
    """Hands out runs of finished records once they can no longer grow, or have waited.

    ``order`` is the ascending list of indices the attempt generates. Each is
    resolved once, either finished (a record) or dropped (failed, abandoned).
    Runs are cut inside the prefix of ``order`` that is fully resolved, at
    ``part_size``, at a dropped index or where indices are not consecutive.
    With ``max_wait`` (seconds of ``clock``), a finished record waits at most
    that long: once the oldest one not handed out has waited so long, every
    finished record not handed out leaves at once, as the contiguous runs they
    form (also beyond an index still in flight; a run handed out early cuts
    the runs around it later). Without ``max_wait`` every part is the same
    whatever order records finish in.
    """

    def __init__(
        self,
        order: Sequence[int],
        part_size: int,
        max_wait: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if part_size < 1:
            raise ValueError("part_size must be at least 1")
        if max_wait is not None and max_wait < 0:
            raise ValueError("max_wait must not be negative")
        self._order = list(order)
        self._size = part_size
        self._max_wait = max_wait
        self._clock = clock
        self._resolved: dict[int, FinishedRecord | None] = {}
        self._cursor = 0
        self._run: list[FinishedRecord] = []
        self._waiting: dict[int, float] = {}
        """Finished records not handed out yet -> when they finished (oldest first)."""
        self._handed: set[int] = set()
        """Indices ahead of the cursor already handed out by an early flush."""

    def finish(self, record: FinishedRecord) -> None:
        """A record is finished."""
        self._resolve(record.index, record)
        self._waiting[record.index] = self._clock()

    def drop(self, index: int) -> None:
        """An index will not be finished in this attempt."""
        self._resolve(index, None)

    def _resolve(self, index: int, value: FinishedRecord | None) -> None:
        if index in self._resolved or index in self._handed:
            raise ValueError(f"index {index} is already resolved")
        self._resolved[index] = value

    def due(self) -> float | None:
        """When (``clock`` time) the oldest waiting record must leave; None: none waits."""
        if self._max_wait is None or not self._waiting:
            return None
        return next(iter(self._waiting.values())) + self._max_wait

    def ready(self) -> list[list[FinishedRecord]]:
        """Runs to write now (call after each finish/drop, and when ``due`` comes)."""
        closed: list[list[FinishedRecord]] = []
        self._advance(closed)
        if len(self._run) >= self._size:
            self._hand(self._run, closed)
            self._run = []
        deadline = self.due()
        if deadline is not None and self._clock() >= deadline:
            self._flush(closed)
        return closed

    def rest(self) -> list[list[FinishedRecord]]:
        """At the end: every finished record not handed out yet, grouped into runs."""
        closed = self.ready()
        while self._cursor < len(self._order):
            index = self._order[self._cursor]
            self._take(None if index in self._handed else self._resolved.pop(index, None), closed)
            self._handed.discard(index)
            self._cursor += 1
        if self._run:
            self._hand(self._run, closed)
            self._run = []
        return closed

    def _advance(self, closed: list[list[FinishedRecord]]) -> None:
        """Move the cursor over the resolved prefix of ``order``."""
        while self._cursor < len(self._order):
            index = self._order[self._cursor]
            if index in self._handed:
                self._handed.discard(index)
                self._take(None, closed)
            elif index in self._resolved:
                self._take(self._resolved.pop(index), closed)
            else:
                return
            self._cursor += 1

    def _flush(self, closed: list[list[FinishedRecord]]) -> None:
        """Hand out every finished record now: the open run, then runs beyond the cursor."""
        if self._run:
            self._hand(self._run, closed)
            self._run = []
        run: list[FinishedRecord] = []
        left = len(self._waiting)  # every one of them lies ahead of the cursor now
        for index in self._order[self._cursor :]:
            if not left:
                break
            record = self._resolved.get(index)
            if record is not None:
                del self._resolved[index]
                self._handed.add(index)
                left -= 1
            run = self._extend(run, record, closed)
        if run:
            self._hand(run, closed)

    def _hand(self, run: list[FinishedRecord], closed: list[list[FinishedRecord]]) -> None:
        for record in run:
            self._waiting.pop(record.index, None)
        closed.append(run)

    def _take(self, record: FinishedRecord | None, closed: list[list[FinishedRecord]]) -> None:
        self._run = self._extend(self._run, record, closed)

    def _extend(
        self,
        run: list[FinishedRecord],
        record: FinishedRecord | None,
        closed: list[list[FinishedRecord]],
    ) -> list[FinishedRecord]:
        """``run`` with ``record`` added, or a new run after handing ``run`` out.

        None (a dropped or unresolved index) and a record that does not follow
        on, or does not fit, close the run.
        """
        if record is None or (
            run and (run[-1].index + 1 != record.index or len(run) >= self._size)
        ):
            if run:
                self._hand(run, closed)
            run = []
        if record is not None:
            run.append(record)
        return run
