"""Finished records, part lines and part metadata.

Pure logic, no I/O. Grouping records into parts: ``run_assembler``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
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
    invalid_answers: dict[str, int] = field(default_factory=dict)
    """Step id -> invalid answers it took (batch mode): a later attempt asks only the rest
    of ``max_output_attempts`` (``invalid_answers`` of a part line, when any)."""

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
        if self.invalid_answers:
            line["invalid_answers"] = self.invalid_answers
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
            invalid_answers=dict(self.invalid_answers),
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
        answers = obj.get("invalid_answers", {})
        if not (isinstance(answers, dict) and all(isinstance(n, int) for n in answers.values())):
            raise ValueError("invalid_answers of a part line must map steps to counts")
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
            invalid_answers={str(k): n for k, n in answers.items()},
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
