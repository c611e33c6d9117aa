"""Batch mode: a partition's records go through Bedrock batch inference jobs, step by step.

For each template step, the records still without its output are rendered, each
record's worst case at the batch price is reserved from the lease (the largest
prefix that fits: a batch is paid for whole before it is submitted), and their
Converse inputs are written as JSON Lines to S3; one model invocation job is
created per model and step (split at ``batch_max_records``). Each job is
recorded in ``batch_invocations`` before it is created (``batch_store``), so an
attempt that finds a job of its partition not applied yet (its generator died)
follows that job instead of submitting again. The job's status is polled; its
output is read and matched by ``recordId`` (the record's index; order is not
relied on) and each answered entry settles its reservation at its usage; a
failed entry stays to do and is retried in a later round (``batch_max_rounds``).
A structured step's entries (``output_schema``, a judge's) carry the same
structured request as its online call (``bedrock.converse_body``), and their
answers are read and checked as online ones (``batch_answers``): an invalid
answer is asked again in a later round, up to ``max_output_attempts`` answers,
after which the record is rejected as ``invalid_output``.
Fewer records than ``batch_min_records`` (Bedrock takes no smaller job) are
called online at the default tier and priced there (``batch_online``). A job
that stops while a batch runs stops it (StopModelInvocationJob) and settles
the entries that ran. Complete records are written as parts; incomplete ones
are kept with the outputs they paid for, as in online mode.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from palette.common import failpoints, keys
from palette.common.batch_jobs import ENDED, batch_call_id
from palette.common.estimates import record_worst_case, rendered_call_worst_case, seed_bytes
from palette.common.structured_support import NoStructuredOutputError
from palette.common.templates import Step, TemplateError, step_context
from palette.generator.batch_answers import StepAnswers
from palette.generator.batch_online import call_online
from palette.generator.batch_store import BatchClient, BatchStore, Submission
from palette.generator.bedrock import ModelRequest, converse_body
from palette.generator.budget import Reservation
from palette.generator.generation import KeepRecord, WriteRun, record_draws, render_step
from palette.generator.records import FinishedRecord
from palette.generator.run_assembler import contiguous_runs
from palette.generator.state import AttemptState
from palette.generator.structured import StructuredOutput, for_step

log = structlog.get_logger("palette.generator.batch")


@dataclass(slots=True)
class Entry:
    """One record's call of a step: its rendered texts, worst case and reservation."""

    index: int
    prompt: str
    system: str | None
    worst: int
    reservation: Reservation | None = None


def model_input(
    step: Step, prompt: str, system: str | None, output: StructuredOutput | None
) -> dict[str, Any]:
    """A batch entry's ``modelInput``: the body of the step's online Converse call.

    Built by the same code (``ModelRequest.of_step``, ``converse_body``), so a
    structured step's entry asks for its schema as its online call does
    (``outputConfig``, or ``toolConfig`` and ``toolChoice``); no request
    metadata, no tier (a ``cache_prompt`` step is refused in batch mode).
    """
    return converse_body(ModelRequest.of_step(step, prompt, system, output=output))


def record_id(index: int) -> str:
    """A batch entry's ``recordId``: the record's index, as Bedrock's 11 characters."""
    return f"{index:011d}"


class BatchRun:
    """One attempt's records in batch mode."""

    def __init__(
        self, state: AttemptState, missing: list[int], chosen: dict[int, dict[str, Any]]
    ) -> None:
        self.state = state
        self.chosen = chosen
        self.records: dict[int, FinishedRecord] = {}
        for i in missing:
            prior = state.partial.get(i)
            position = state.draws.position(i)
            self.records[i] = prior.resumed() if prior else state.draws.record(i, position)
        rt = state.rt
        assert rt.batches is not None
        assert rt.batch_client is not None
        self.store: BatchStore = rt.batches
        self.client: BatchClient = rt.batch_client
        self.applied: list[str] = []
        self.unsettled: dict[str, list[Reservation]] = {}
        """This attempt's jobs not applied yet: their entries' reservations."""
        self.to_keep: set[int] = set()
        """Records to keep if they end incomplete: given a step's output by another lease's
        job (paid for by that lease), or an invalid answer (``StepAnswers``)."""

    async def run(self) -> None:
        """Every step in turn, resuming the partition's batch jobs not applied yet."""
        state, msg, settings = self.state, self.state.msg, self.state.rt.settings
        resumed = await self.store.open_for(msg.job_id, msg.partition)
        for k, step in enumerate(msg.template.steps):
            try:
                output = for_step(step, state.rt.structured)
            except NoStructuredOutputError as exc:
                state.fail(str(exc), retryable=False)
                return
            answers = StepAnswers(
                state, step, output, self.records, self.to_keep, settings.max_output_attempts
            )
            for submission in (s for s in resumed if s.step == step.id):
                log.info("batch_resumed", arn=submission.arn, step=step.id)
                await self.follow(submission, answers, {})
            rounds = 0
            while not state.halted():
                todo = answers.todo()
                if not todo:
                    break
                if rounds == answers.rounds(settings.batch_max_rounds):
                    state.fail(
                        f"step {step.id}: {len(todo)} entries failed in every round", retryable=True
                    )
                    return
                rounds += 1
                await self.round(k, answers, todo)
            if state.halted():
                return

    async def round(self, k: int, answers: StepAnswers, todo: list[int]) -> None:
        """One round of a step: reserve what fits, then batch jobs, or online calls."""
        state, settings, step = self.state, self.state.rt.settings, answers.step
        try:
            entries = [await self.render(k, step, i) for i in todo]
        except TemplateError as exc:
            state.fail(str(exc), retryable=False)
            return
        if len(entries) < settings.batch_min_records:
            answers.asking(todo)
            await call_online(state, answers, [self.online(e) for e in entries])
            return
        reserved = self.reserve(entries)
        if not reserved:
            self.exhausted(todo[0])
            return
        if len(reserved) < settings.batch_min_records:
            for entry in reserved:
                assert entry.reservation is not None
                state.guard.release(entry.reservation)
            answers.asking(e.index for e in reserved)
            await call_online(state, answers, [self.online(e) for e in reserved])
            return
        size = settings.batch_max_records
        chunks = [reserved[at : at + size] for at in range(0, len(reserved), size)]
        submissions = [await self.submit(answers, chunk) for chunk in chunks]
        async with asyncio.TaskGroup() as group:  # one failing cancels the others
            for sub, chunk in zip(submissions, chunks, strict=True):
                kept = {e.index: e.reservation for e in chunk if e.reservation}
                group.create_task(self.follow(sub, answers, kept))

    def online(self, entry: Entry) -> tuple[FinishedRecord, str, str | None]:
        """An entry as ``call_online`` takes it."""
        return self.records[entry.index], entry.prompt, entry.system

    async def render(self, k: int, step: Step, index: int) -> Entry:
        """A record's texts for step ``k`` and their worst case at the batch price."""
        state = self.state
        record = self.records[index]
        seed = self.chosen[state.draws.position(index)]
        first = state.first_steps.get(state.draws.position(index)) if k == 0 else None
        if first is not None:
            prompt, system = first
        else:
            context = step_context(seed, record.outputs, record.variables)
            draws = record_draws(state.msg.job_id, index)
            prompt, system = await render_step(state.rt.renderer, step, k, context, draws)
        bound = step.bound_system(system)  # a schema counts as input
        worst = rendered_call_worst_case(state.prices[step.model], prompt, bound, step.max_tokens)
        return Entry(index, prompt, system, worst)

    def reserve(self, entries: Sequence[Entry]) -> list[Entry]:
        """The longest prefix of ``entries`` whose worst cases the lease holds, reserved."""
        reserved: list[Entry] = []
        for entry in entries:
            entry.reservation = self.state.guard.try_reserve(entry.worst)
            if entry.reservation is None:
                break
            reserved.append(entry)
        return reserved

    def exhausted(self, index: int) -> None:
        """Nothing more fits in the lease: the partition needs a new one."""
        state = self.state
        seed = self.chosen[state.draws.position(index)]
        state.exhausted = True
        needed = record_worst_case(state.msg.template.steps, state.prices, seed_bytes(seed))
        state.needed = max(state.needed, needed)

    async def submit(self, answers: StepAnswers, entries: Sequence[Entry]) -> Submission:
        """Write the input, record the job, create it, record its ARN.

        From its record on, the job may run and bill: until it is applied, its
        entries' reservations are its worst case (``finish`` holds them).
        """
        msg, step = self.state.msg, answers.step
        token = uuid.uuid4().hex
        folder = f"{keys.job_prefix(msg.job_id)}batch/{msg.partition}/{token}/"
        submission = Submission(
            token=token,
            job_id=msg.job_id,
            partition=msg.partition,
            step=step.id,
            model_id=step.model,
            records=tuple(e.index for e in entries),
            input_key=f"{folder}input.jsonl",
            output_prefix=f"{folder}out/",
            lease_id=msg.lease_id,
        )
        lines = [
            {
                "recordId": record_id(e.index),
                "modelInput": model_input(step, e.prompt, e.system, answers.output),
            }
            for e in entries
        ]
        await asyncio.to_thread(self.client.put_input, submission.input_key, lines)
        await self.store.record(submission)
        self.unsettled[token] = [e.reservation for e in entries if e.reservation]
        arn = await asyncio.to_thread(self.client.create, submission)
        answers.asking(submission.records)
        failpoints.hit("generator.batch_created")
        await self.store.set_arn(token, arn)
        failpoints.hit("generator.batch_recorded")
        log.info("batch_submitted", arn=arn, step=step.id, records=len(entries))
        return Submission(**{**_fields(submission), "arn": arn})

    async def follow(
        self, submission: Submission, answers: StepAnswers, reservations: dict[int, Reservation]
    ) -> None:
        """Wait for a job to end (stopping it if the job stops), then apply its output."""
        state, rt = self.state, self.state.rt
        job_id = state.msg.job_id
        arn = submission.arn
        if arn is None:  # created, or not, before a crash: found by its token's name
            arn = await asyncio.to_thread(self.client.find, submission.token)
            if arn is None:  # never created: its records are still to do
                log.info("batch_never_created", token=submission.token, step=answers.step.id)
                self.applied.append(submission.token)
                return
            await self.store.set_arn(submission.token, arn)
            submission = Submission(**{**_fields(submission), "arn": arn})
        stop_sent = False
        while True:
            status = (await asyncio.to_thread(self.client.status, arn))["status"]
            if status in ENDED:
                break
            if rt.stops.is_stopped(job_id) and not stop_sent:
                log.info("batch_stopping", arn=arn)
                await asyncio.to_thread(self.client.stop, arn)
                stop_sent = True
            await rt.stops.sleep(job_id, rt.settings.batch_poll_seconds)
        lines, manifest = await asyncio.to_thread(self.client.output_of, submission)
        self.unsettled.pop(submission.token, None)
        answers.apply(submission, lines, manifest, reservations)
        self.applied.append(submission.token)
        if stop_sent:
            state.stopped = True

    async def finish(self, write: WriteRun, keep: KeepRecord) -> None:
        """Write the complete records as parts, keep the incomplete ones, mark jobs applied."""
        steps = [step.id for step in self.state.msg.template.steps]
        done = sorted(
            i
            for i, r in self.records.items()
            if r.invalid is not None or all(s in r.outputs for s in steps)
        )
        for token, reservations in self.unsettled.items():  # may have run: ask accounting
            self.state.guard.hold_all(reservations, batch_call_id(token))
        for index, record in self.records.items():
            if index not in done and (record.made_calls or index in self.to_keep):
                self.state.orphan.merge(record.tally())
                record.complete = False
                await keep(record)
        for first, count in contiguous_runs(done, self.state.rt.settings.part_size):
            await write([self.records[i] for i in range(first, first + count)])
        if self.state.failure is None and self.state.fatal is None:
            await self.store.mark_applied(self.applied)


def _fields(submission: Submission) -> dict[str, Any]:
    return {name: getattr(submission, name) for name in Submission.__dataclass_fields__}


async def generate_batch(
    state: AttemptState,
    missing: list[int],
    chosen: dict[int, dict[str, Any]],
    write: WriteRun,
    keep: KeepRecord,
) -> None:
    """Generate ``missing`` in batch mode (see the module's docstring)."""
    run = BatchRun(state, missing, chosen)
    try:
        await run.run()
    except TemplateError as exc:
        state.fail(str(exc), retryable=False)
    except Exception as exc:
        log.exception("batch_failed")
        state.fail(f"batch: {type(exc).__name__}: {exc}", retryable=True)
    await run.finish(write, keep)
