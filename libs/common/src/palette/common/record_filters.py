"""What a job keeps of what it made: its ``keep_if`` filter and its ``dedup``.

Pure logic, no I/O. Both are applied when the dataset is written, to the
complete records in index order, so what is kept never depends on which
record finished first: a record ``keep_if`` is false for is rejected with the
reason ``keep_if``; of records whose ``dedup`` field is the same (``exact``:
the same text once normalised) or alike (``near``: estimated Jaccard similarity
of word shingles at least ``threshold``, by MinHash with locality-sensitive
hashing from ``rensa``: candidates from the LSH bands, then each candidate's
estimated similarity checked against the threshold), the first by index is kept
and the others are rejected as ``duplicate``. Records whose later steps never
ran are neither: they stay in the dataset flagged ``complete: false``.

Near dedup's memory is bounded: it keeps the signatures of the first
``max_signatures`` kept records by index (about 3.5 KB each, 50,000 by default)
and compares every later record with them; a record kept past that bound is not
remembered, so a repeat of it is caught only when it is alike to one of those
first records. What is kept still depends on the records in index order alone.

``keep_if`` is an expression in the prompts' sandbox that reads
``steps.<id>.output`` and ``vars.<name>``, e.g.
``steps.answer.output | length > 40 and vars.tone == "formal"``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from rensa import RMinHash, RMinHashLSH

from palette.common.output_schema import field_problem
from palette.common.samplers import field_value
from palette.common.sandbox import TemplateError, build_budget
from palette.common.steps import Step
from palette.common.templates import (
    MAX_KEEP_IF_CHARS,
    TemplateSpec,
    compile_expression,
    references,
)
from palette.common.time_limit import Expired, time_limit

KEEP_IF_SECONDS = 0.5
NUM_PERM = 128
LSH_BANDS = 32
"""Bands of 4 rows: a pair at similarity 0.5 is a candidate with probability 0.87, at 0.85 with
probability ~1; candidates are then checked against the threshold."""
MINHASH_SEED = 42
SHINGLE_WORDS = 3
MAX_NEAR_SIGNATURES = 50_000
"""Signatures near dedup keeps by default (about 175 MB): the first kept records' by index."""
_NAME = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
DEDUP_FIELD = rf"^(steps\.{_NAME}\.output(\.{_NAME})*|vars\.{_NAME})$"
KEEP_IF = "keep_if"
DUPLICATE = "duplicate"
INVALID_OUTPUT = "invalid_output"
"""The reason of a record a step of which never answered what its schema validates."""

KeepIfExpression = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_KEEP_IF_CHARS,
        description="An expression over `steps.<id>.output` and `vars.<name>`; records for "
        "which it is false are rejected (not in the dataset; in the rejected file).",
        examples=["steps.answer.output | length > 40"],
    ),
]


class Dedup(BaseModel):
    """Which records are duplicates of an earlier one (by record index)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    field: Annotated[
        str,
        Field(
            pattern=DEDUP_FIELD,
            description="`steps.<id>.output` (a field of a structured one: "
            "`steps.<id>.output.<field>`) or `vars.<name>`.",
        ),
    ]
    mode: Literal["exact", "near"] = "exact"
    threshold: Annotated[float, Field(gt=0.0, le=1.0)] = Field(
        0.85, description="near: the Jaccard similarity from which two records are duplicates."
    )


def check(template: TemplateSpec, keep_if: str | None, dedup: Dedup | None) -> None:
    """Refuse a ``keep_if`` or ``dedup`` that reads what a kept record does not have.

    Raises:
        TemplateError: naming ``keep_if`` or ``dedup.field`` and the problem.
    """
    steps = {step.id: step for step in template.steps}
    if keep_if is not None:
        for path in references("{{ (" + keep_if + ") }}", KEEP_IF):
            _check_path(KEEP_IF, path, steps, template.variables)
        compile_expression(keep_if, KEEP_IF)
    if dedup is not None:
        _check_path("dedup.field", dedup.field.split("."), steps, template.variables)


def _check_path(
    field: str, path: list[str], steps: Mapping[str, Step], variables: Mapping[str, Any]
) -> None:
    name = ".".join(path)
    if path[0] == "steps":
        if len(path) < 3 or path[2] != "output":
            raise TemplateError(field, f"{name}: use steps.<id>.output to read a step")
        if path[1] not in steps:
            raise TemplateError(field, f"{name}: the template has no step {path[1]!r}")
        schema = steps[path[1]].answer_schema
        problem = field_problem(schema, path[3:]) if schema is not None else None
        if problem is not None:
            raise TemplateError(field, f"steps.{path[1]}.output: {problem}")
    elif path[0] == "vars":
        if len(path) < 2 or path[1] not in variables:
            raise TemplateError(field, f"{name}: the template has no variable of that name")
    else:
        raise TemplateError(
            field, f"{name}: only steps.<id>.output and vars.<name> are known of a record"
        )


def normalise(text: str) -> str:
    """Text compared for duplicates: NFKC, case-folded, words only, single spaces."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.findall(r"\w+", folded))


class RecordFilter:
    """Decides, record by record in index order, whether each complete record is kept.

    A template's own ``keep_if`` (``template_keep_if``) and the job's both apply:
    a record is kept only when both are true, the template's checked first.
    """

    def __init__(
        self,
        keep_if: str | None,
        dedup: Dedup | None,
        template_keep_if: str | None = None,
        max_signatures: int = MAX_NEAR_SIGNATURES,
    ) -> None:
        self._filters = [
            (label, compile_expression(source, KEEP_IF))
            for label, source in (("template keep_if", template_keep_if), (KEEP_IF, keep_if))
            if source
        ]
        self._dedup = dedup
        self._exact: dict[str, int] = {}
        self._near: RMinHashLSH | None = None
        self._sketches: dict[int, RMinHash] = {}
        self._max_signatures = max_signatures
        self.unremembered = 0
        """Records near dedup kept without keeping their signature (past the bound)."""
        if dedup is not None and dedup.mode == "near":
            self._near = RMinHashLSH(
                threshold=dedup.threshold, num_perm=NUM_PERM, num_bands=LSH_BANDS
            )

    def rejection(
        self, index: int, outputs: Mapping[str, Any], variables: Mapping[str, Any]
    ) -> tuple[str, str] | None:
        """``(reason, detail)`` of a rejected record; None for a kept one (then remembered)."""
        context = {
            "steps": {step: {"output": value} for step, value in outputs.items()},
            "vars": dict(variables),
        }
        for label, expression in self._filters:
            failed = self._failed_keep_if(label, expression, context)
            if failed is not None:
                return KEEP_IF, failed
        if self._dedup is None:
            return None
        value = field_value(context, self._dedup.field)
        if not isinstance(value, str):  # a structured field: its JSON
            value = "" if value is None else json.dumps(value, sort_keys=True)
        text = normalise(value)
        first = self._duplicate_of(index, text)
        return None if first is None else (DUPLICATE, f"duplicate of record {first}")

    def _failed_keep_if(self, label: str, expression: Any, context: dict[str, Any]) -> str | None:
        """Why ``keep_if`` rejects the record (None: kept).

        The sandbox's build budget bounds what the expression may build anywhere;
        the time limit applies where it runs on the main thread (an export runs
        in a worker thread, where ``time_limit`` sets none).
        """
        try:
            with build_budget(), time_limit(KEEP_IF_SECONDS):
                kept = expression(**context)
        except Expired:
            return f"{label} took longer than {KEEP_IF_SECONDS}s"
        except Exception as exc:  # the expression's own error on this record
            return f"{label} failed: {type(exc).__name__}: {exc}"[:500]
        return None if kept else f"{label} is false"

    def _duplicate_of(self, index: int, text: str) -> int | None:
        if self._near is None:
            first = self._exact.get(text)
            if first is None:
                self._exact[text] = index
            return first
        sketch = RMinHash(num_perm=NUM_PERM, seed=MINHASH_SEED)
        words = text.split()
        sketch.update(
            sorted(
                {
                    " ".join(words[i : i + SHINGLE_WORDS])
                    for i in range(max(1, len(words) - SHINGLE_WORDS + 1))
                }
            )
        )
        assert self._dedup is not None
        alike = [
            key
            for key in self._near.query(sketch)
            if self._sketches[key].jaccard(sketch) >= self._dedup.threshold
        ]
        if alike:
            return int(min(alike))
        if len(self._sketches) >= self._max_signatures:
            self.unremembered += 1
            return None
        self._near.insert(index, sketch)
        self._sketches[index] = sketch
        return None
