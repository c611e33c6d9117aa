"""A batch-mode step's answers: applied to records, checked against the step's schema.

One ``StepAnswers`` per step of a ``BatchRun``. An answer, a batch entry's
``modelOutput`` (a Converse response body, read by ``bedrock.parse_response``
as an online response is) or an online call's result, gives its record the
step's output: its text, or for a structured step (``output_schema``, a
judge's) the JSON value its schema validates (``calls.checked_answer``, as
online). An invalid answer was billed like any other: its usage is orphan
usage and the record is asked again in a later round, in a batch or online as
its number allows, up to ``max_output_attempts`` answers; after the last one
the record is marked ``invalid`` (the export rejects it as ``invalid_output``,
as online) and gets no later step. Each answer asked again counts as retried
when it is sent. The count is the record's (``invalid_answers``), kept with it
when its attempt ends first (a round of worst cases often outgrows the lease),
so a later attempt asks only the calls left.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog

from palette.common.batch_jobs import usage_of
from palette.common.output_schema import OutputInvalidError
from palette.common.templates import Step
from palette.generator.batch_store import Submission
from palette.generator.bedrock import ModelResult, parse_response
from palette.generator.budget import Reservation
from palette.generator.calls import checked_answer, no_valid_output
from palette.generator.records import FinishedRecord
from palette.generator.state import AttemptState
from palette.generator.structured import StructuredOutput

log = structlog.get_logger("palette.generator.batch")


@dataclass(slots=True)
class StepAnswers:
    """The answers of one step of a batch run, and the records still to ask."""

    state: AttemptState
    step: Step
    output: StructuredOutput | None
    """How the step asks for its schema (``structured.for_step``); None: a text step."""
    records: dict[int, FinishedRecord]
    to_keep: set[int]
    """The run's records to keep if they end incomplete: given a step's output by
    another lease's job, or an invalid answer (shared by the run's steps)."""
    attempts: int
    """Answers a structured step may take per record (``max_output_attempts``)."""
    again: set[int] = field(default_factory=set)
    """Records whose last answer was invalid and that are to be asked again."""

    def todo(self) -> list[int]:
        """Records still without the step's output (nor rejected at it)."""
        step = self.step.id
        return [i for i, r in self.records.items() if step not in r.outputs and r.invalid is None]

    def rounds(self, failures: int) -> int:
        """Rounds the step may take: ``failures`` for failed entries, more to ask again."""
        return failures + (self.attempts - 1 if self.output is not None else 0)

    def asking(self, indices: Iterable[int]) -> None:
        """These records are asked now: those asked again count as retried."""
        again = self.again.intersection(indices)
        if again:
            self.again -= again
            self.state.count_retries(retried=len(again))

    def take(self, record: FinishedRecord, result: ModelResult, rate: str = "") -> None:
        """An answer billed under this attempt's lease (``rate``: when not the attempt's)."""
        if self._put(record, result, rate, billed=True) and rate:
            record.rates[self.step.id] = rate

    def carry(self, record: FinishedRecord, result: ModelResult) -> None:
        """An answer another lease paid for: the step's output, carried (not in this usage)."""
        if self._put(record, result, "", billed=False):
            record.carried = record.carried | {self.step.id}
            self.to_keep.add(record.index)

    def _put(self, record: FinishedRecord, result: ModelResult, rate: str, *, billed: bool) -> bool:
        """Give the record the answer's value; False when the answer is invalid (counted).

        ``billed``: under this attempt's lease (an invalid answer's usage is then
        orphan usage at ``rate``); else another lease pays for it.
        """
        index, step, output = record.index, self.step, self.output
        try:
            if billed:
                call = record.invalid_answers.get(step.id, 0) + 1
                value = checked_answer(self.state, index, step, output, result, call, rate)
            else:
                value = output.parse(result.text, result.tool_input) if output else result.text
        except OutputInvalidError as exc:
            self._invalid(record, str(exc))
            return False
        record.outputs[step.id], record.models[step.id] = value, step.model
        record.usage[step.id] = (result.input_tokens, result.output_tokens)
        if result.cache_read_tokens or result.cache_write_tokens:
            record.cached[step.id] = (result.cache_read_tokens, result.cache_write_tokens)
        return True

    def _invalid(self, record: FinishedRecord, problem: str) -> None:
        """An invalid answer: ask again, or after the last one allowed reject the record."""
        index, step = record.index, self.step.id
        count = record.invalid_answers[step] = record.invalid_answers.get(step, 0) + 1
        self.to_keep.add(index)
        if count < self.attempts:
            self.again.add(index)
            return
        error = no_valid_output(self.step, count, problem)
        record.invalid = {"step": step, "error": error[:1000]}
        log.info("record_invalid_output", record=index, step=step)

    def apply(
        self,
        submission: Submission,
        lines: list[dict[str, Any]],
        manifest: dict[str, Any],
        reservations: dict[int, Reservation],
    ) -> None:
        """Each answered entry settles at its usage; the rest release their reservation.

        A job another lease submitted (resumed from an earlier attempt) is that
        lease's to pay: accounting counts it when it settles that lease, so its
        entries give their records outputs (carried, as from an earlier
        attempt) and cost this attempt nothing.
        """
        state, step = self.state, self.step
        price = state.prices[step.model]
        wanted = set(submission.records)
        theirs = submission.lease_id != state.msg.lease_id
        for line in lines:
            index = int(line.get("recordId", "-1"))
            record = self.records.get(index)
            output = line.get("modelOutput")
            if record is None or index not in wanted or output is None:
                continue  # failed, or in a part already
            if step.id in record.outputs or record.invalid is not None:
                continue  # made (or rejected) by an earlier attempt
            result = parse_response(output)
            i, o = result.input_tokens, result.output_tokens
            reservation = reservations.pop(index, None)
            if theirs:
                self.carry(record, result)
                continue
            if reservation is not None:
                state.guard.settle(reservation, price.cost(i, o))
            else:  # this lease's own job resumed (not in practice: a takeover ends at once)
                state.guard.charge(price.cost(i, o))
            state.usage.add(step.id, step.model, i, o)
            self.take(record, result)
        for reservation in reservations.values():
            state.guard.release(reservation)
        _, *tokens = usage_of(lines, wanted)
        counted = [manifest.get("inputTokenCount"), manifest.get("outputTokenCount")]
        if manifest and counted != tokens:
            log.warning(
                "batch_manifest_differs", arn=submission.arn, manifest=manifest, read=tokens
            )
