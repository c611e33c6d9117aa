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
from palette.common.batch_jobs import ENDED, answer_of, batch_call_id, usage_of
from palette.common.estimates import record_worst_case, rendered_call_worst_case, seed_bytes
from palette.common.templates import Step, TemplateError, step_context
from palette.generator.batch_online import call_online
from palette.generator.batch_store import BatchClient, BatchStore, Submission
from palette.generator.budget import Reservation
from palette.generator.generation import KeepRecord, WriteRun, record_draws, render_step
from palette.generator.records import FinishedRecord, contiguous_runs
from palette.generator.state import AttemptState

log = structlog.get_logger("palette.generator.batch")


@dataclass(slots=True)
class Entry:
    """One record's call of a step: its rendered texts, worst case and reservation."""

    index: int
    prompt: str
    system: str | None
    worst: int
    reservation: Reservation | None = None


def model_input(step: Step, prompt: str, system: str | None) -> dict[str, Any]:
    """A Converse request body, as a batch entry's ``modelInput``."""
    body: dict[str, Any] = {
        "messages": [{"role": "user", "content": [{"text": prompt}]}],
        "inferenceConfig": {"maxTokens": step.max_tokens, "temperature": step.temperature},
    }
    if system:
        body["system"] = [{"text": system}]
    return body


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
        self.given: set[int] = set()
        """Records given a step's output by another lease's job (paid for by that lease)."""

    async def run(self) -> None:
        """Every step in turn, resuming the partition's batch jobs not applied yet."""
        state, msg = self.state, self.state.msg
        resumed = await self.store.open_for(msg.job_id, msg.partition)
        for k, step in enumerate(msg.template.steps):
            for submission in (s for s in resumed if s.step == step.id):
                log.info("batch_resumed", arn=submission.arn, step=step.id)
                await self.follow(submission, step, {})
            rounds = 0
            while not state.halted():
                todo = [i for i, r in self.records.items() if step.id not in r.outputs]
                if not todo:
                    break
                if rounds == state.rt.settings.batch_max_rounds:
                    state.fail(
                        f"step {step.id}: {len(todo)} entries failed in every round", retryable=True
                    )
                    return
                rounds += 1
                await self.round(k, step, todo)
            if state.halted():
                return

    async def round(self, k: int, step: Step, todo: list[int]) -> None:
        """One round of a step: reserve what fits, then batch jobs, or online calls."""
        state, settings = self.state, self.state.rt.settings
        try:
            entries = [await self.render(k, step, i) for i in todo]
        except TemplateError as exc:
            state.fail(str(exc), retryable=False)
            return
        if len(entries) < settings.batch_min_records:
            await call_online(
                state, step, [(self.records[e.index], e.prompt, e.system) for e in entries]
            )
            return
        reserved = self.reserve(entries)
        if not reserved:
            self.exhausted(todo[0])
            return
        if len(reserved) < settings.batch_min_records:
            for entry in reserved:
                assert entry.reservation is not None
                state.guard.release(entry.reservation)
            await call_online(state, step, [self.online(e) for e in reserved])
            return
        size = settings.batch_max_records
        chunks = [reserved[at : at + size] for at in range(0, len(reserved), size)]
        submissions = [await self.submit(step, chunk) for chunk in chunks]
        async with asyncio.TaskGroup() as group:  # one failing cancels the others
            for sub, chunk in zip(submissions, chunks, strict=True):
                kept = {e.index: e.reservation for e in chunk if e.reservation}
                group.create_task(self.follow(sub, step, kept))

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
        worst = rendered_call_worst_case(state.prices[step.model], prompt, system, step.max_tokens)
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

    async def submit(self, step: Step, entries: Sequence[Entry]) -> Submission:
        """Write the input, record the job, create it, record its ARN.

        From its record on, the job may run and bill: until it is applied, its
        entries' reservations are its worst case (``finish`` holds them).
        """
        msg = self.state.msg
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
            {"recordId": record_id(e.index), "modelInput": model_input(step, e.prompt, e.system)}
            for e in entries
        ]
        await asyncio.to_thread(self.client.put_input, submission.input_key, lines)
        await self.store.record(submission)
        self.unsettled[token] = [e.reservation for e in entries if e.reservation]
        arn = await asyncio.to_thread(self.client.create, submission)
        failpoints.hit("generator.batch_created")
        await self.store.set_arn(token, arn)
        failpoints.hit("generator.batch_recorded")
        log.info("batch_submitted", arn=arn, step=step.id, records=len(entries))
        return Submission(**{**_fields(submission), "arn": arn})

    async def follow(
        self, submission: Submission, step: Step, reservations: dict[int, Reservation]
    ) -> None:
        """Wait for a job to end (stopping it if the job stops), then apply its output."""
        state, rt = self.state, self.state.rt
        job_id = state.msg.job_id
        arn = submission.arn
        if arn is None:  # created, or not, before a crash: found by its token's name
            arn = await asyncio.to_thread(self.client.find, submission.token)
            if arn is None:  # never created: its records are still to do
                log.info("batch_never_created", token=submission.token, step=step.id)
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
        self.apply(submission, step, lines, manifest, reservations)
        self.applied.append(submission.token)
        if stop_sent:
            state.stopped = True

    def apply(
        self,
        submission: Submission,
        step: Step,
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
        state = self.state
        price = state.prices[step.model]
        wanted = set(submission.records)
        theirs = submission.lease_id != state.msg.lease_id
        for line in lines:
            index = int(line.get("recordId", "-1"))
            record = self.records.get(index)
            answer = answer_of(line)
            if record is None or index not in wanted or answer is None or step.id in record.outputs:
                continue  # failed, or in a part already, or made by an earlier attempt
            text, i, o = answer
            reservation = reservations.pop(index, None)
            if theirs:
                record.carried = record.carried | {step.id}
                self.given.add(index)
            elif reservation is not None:
                state.guard.settle(reservation, price.cost(i, o))
            else:  # this lease's own job resumed (not in practice: a takeover ends at once)
                state.guard.charge(price.cost(i, o))
            if not theirs:
                state.usage.add(step.id, step.model, i, o)
            record.outputs[step.id] = text
            record.models[step.id] = step.model
            record.usage[step.id] = (i, o)
        for reservation in reservations.values():
            state.guard.release(reservation)
        _, *tokens = usage_of(lines, wanted)
        counted = [manifest.get("inputTokenCount"), manifest.get("outputTokenCount")]
        if manifest and counted != tokens:
            log.warning(
                "batch_manifest_differs", arn=submission.arn, manifest=manifest, read=tokens
            )

    async def finish(self, write: WriteRun, keep: KeepRecord) -> None:
        """Write the complete records as parts, keep the incomplete ones, mark jobs applied."""
        steps = [step.id for step in self.state.msg.template.steps]
        done = sorted(i for i, r in self.records.items() if all(s in r.outputs for s in steps))
        for token, reservations in self.unsettled.items():  # may have run: ask accounting
            self.state.guard.hold_all(reservations, batch_call_id(token))
        for index, record in self.records.items():
            if index not in done and (record.made_calls or index in self.given):
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
