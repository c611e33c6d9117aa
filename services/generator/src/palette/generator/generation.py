"""Generating an attempt's missing records with bounded concurrency.

Records are taken in index order by up to twice ``concurrency`` workers. A record
starts only while the attempt is not halted and its estimated worst case fits
beside the records in flight; each of its steps is rendered, then called
through ``ModelCalls`` (stop check and reservation before every attempt).
Finished records are handed to the ``write`` callback run by run; a record
whose later steps never ran (the job stopped, the lease ran out, a call
failed) goes to ``keep`` with the outputs it paid for, and a record an
earlier attempt left incomplete (``state.partial``) resumes at its first
step not made.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog

from palette.common.estimates import record_worst_case, rendered_call_worst_case, seed_bytes
from palette.common.templates import Step, TemplateError, step_context
from palette.generator.bedrock import ModelCallError
from palette.generator.budget import PledgeBook
from palette.generator.calls import (
    ClaimLapsedError,
    Exhausted,
    InvalidOutputError,
    ModelCalls,
    Stopped,
)
from palette.generator.pacing import ModelUnavailableError
from palette.generator.records import FinishedRecord
from palette.generator.rendering import Renderer
from palette.generator.run_assembler import RunAssembler
from palette.generator.state import AttemptState
from palette.generator.structured import for_step

log = structlog.get_logger("palette.generator.partition")

WriteRun = Callable[[list[FinishedRecord]], Awaitable[None]]
KeepRecord = Callable[[FinishedRecord], Awaitable[None]]
ADMIT_POLL_SECONDS = 0.05
WORKERS_PER_SLOT = 2
"""An attempt runs this many workers per call slot of the process. While it has
records left it then always has calls waiting, so with slots granted oldest
attempt first (``slots.py``) it keeps every slot until its last records, and
the next partition, already set up, takes over the slots as they free."""


_UNDEFINED_NAME = re.compile(r"'[^']+' is undefined")


FirstStep = tuple[str, str | None]
"""The first step's rendered prompt and system text of one seed."""


async def render_step(
    renderer: Renderer, step: Step, k: int, context: dict[str, Any], draws: str | None = None
) -> FirstStep:
    """Step ``k``'s prompt and system text (None without one) for one record.

    ``draws``: the record's key for the ``random`` filter (``record_draws``).
    """
    prompt = await renderer.render(step.prompt, context, field=f"steps[{k}].prompt", draws=draws)
    system = (
        await renderer.render(step.system, context, field=f"steps[{k}].system", draws=draws)
        if step.system
        else None
    )
    return prompt, step.call_system(system)


def record_draws(job_id: str, index: int) -> str:
    """The key of a record's ``random`` picks: the same record picks the same, wherever."""
    return f"{job_id}/{index}"


async def seed_problem(
    renderer: Renderer,
    steps: Sequence[Step],
    seed: dict[str, Any],
    variables: dict[str, Any] | None = None,
) -> tuple[str | None, FirstStep | None]:
    """Why rendering would fail for this seed, found before any call (None if fine).

    The first step renders exactly as it will (its texts are returned for the
    records that draw this seed); later steps render with empty earlier
    outputs, and only a top-level name the seed lacks counts there (other
    errors may depend on what the model answers). ``variables``: the draws of
    a record that draws this seed (a first step that reads them is not reused).
    """
    try:
        first = await render_step(renderer, steps[0], 0, step_context(seed, {}, variables))
    except TemplateError as exc:
        return str(exc), None
    outputs = {steps[0].id: ""}
    for k, step in enumerate(steps[1:], start=1):
        context = step_context(seed, outputs, variables)
        for name, source in (("prompt", step.prompt), ("system", step.system)):
            if not source:
                continue
            try:
                await renderer.render(source, context, field=f"steps[{k}].{name}")
            except TemplateError as exc:
                if _UNDEFINED_NAME.search(exc.problem):
                    return str(exc), None
        outputs[step.id] = ""
    return None, first


async def generate(
    state: AttemptState,
    missing: list[int],
    chosen: dict[int, dict[str, Any]],
    write: WriteRun,
    keep: KeepRecord,
) -> None:
    """Generate ``missing`` (ascending) until done or halted, writing runs as they close.

    An incomplete record that made calls in this attempt is handed to ``keep``.

    Long because its nested ``admit`` and record tasks share the loop's state (the
    assembler, the pledges, the condition they wait on) by closure: split apart,
    each piece would take all of it as arguments on the generator's hot path.
    """
    msg = state.msg
    assembler = RunAssembler(
        missing, state.rt.settings.part_size, state.rt.settings.part_flush_seconds
    )
    pending = iter(missing)
    pledges = PledgeBook()
    changed = asyncio.Condition()

    async def admit(estimate: int) -> bool:
        async with changed:
            while not state.halted():
                if pledges.in_flight == 0 or pledges.fits(state.guard.available, estimate):
                    return True
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), ADMIT_POLL_SECONDS)
            return False

    async def worker() -> None:
        try:
            await work()
        except Exception as exc:  # a bug: end the attempt, never leave a worker behind
            log.exception("worker_failed")
            state.fail(f"generator error: {type(exc).__name__}: {exc}", retryable=True)

    async def work() -> None:
        for index in pending:
            seed_pos = state.draws.position(index)
            seed = chosen[seed_pos]
            estimate = record_worst_case(
                msg.template.steps, state.prices, seed_bytes(seed), observed=state.observed
            )
            if not await admit(estimate):
                return
            pledges.open(index, estimate)
            try:
                record = await run_record(state, index, seed_pos, seed, pledges)
            finally:
                pledges.close(index)
                async with changed:
                    changed.notify_all()
            await resolve(assembler, index, record, keep)
            for run in assembler.ready():
                await write(run)

    poller = asyncio.create_task(poll_status(state))
    done = asyncio.Event()
    flusher = asyncio.create_task(flush_waiting(state, assembler, write, done))
    try:
        workers = min(state.rt.settings.concurrency * WORKERS_PER_SLOT, len(missing))
        await asyncio.gather(*(worker() for _ in range(workers)))
    finally:
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
        done.set()  # never cancelled: a part it writes is always announced too
        await flusher
    for run in assembler.rest():
        await write(run)


async def resolve(
    assembler: RunAssembler, index: int, record: FinishedRecord | None, keep: KeepRecord
) -> None:
    """A record's end: finished, else dropped (after ``keep`` of what it made here)."""
    if record is not None and record.complete:
        assembler.finish(record)
        return
    if record is not None and record.made_calls:
        await keep(record)
    assembler.drop(index)


async def flush_waiting(
    state: AttemptState, assembler: RunAssembler, write: WriteRun, done: asyncio.Event
) -> None:
    """Write finished records that waited ``part_flush_seconds`` while every call is slow.

    Workers write after each record they finish; this covers the time when
    none finishes. It ends when ``done`` is set, after the write in hand.
    """
    idle = state.rt.settings.part_flush_seconds
    while not done.is_set():
        due = assembler.due()
        delay = idle if due is None else max(due - time.monotonic(), 0.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done.wait(), delay)
        if done.is_set():
            return
        try:
            for run in assembler.ready():
                await write(run)
        except Exception as exc:  # a bug: end the attempt rather than lose the flusher
            log.exception("flush_failed")
            state.fail(f"generator error: {type(exc).__name__}: {exc}", retryable=True)
            return


async def poll_status(state: AttemptState) -> None:
    """Re-read the job's status now and then, in case a broadcast was missed."""
    interval = state.rt.settings.status_poll_seconds
    if interval <= 0:
        return
    job_id = state.msg.job_id
    while True:
        await asyncio.sleep(interval)
        try:
            status = await state.rt.jobs.status(job_id)
        except Exception as exc:
            log.warning("job_status_unreadable", error=f"{type(exc).__name__}: {exc}")
            continue
        if status is not None and status.is_final:
            state.rt.stops.stop(job_id, status)
            log.info("job_stopped_seen", status=status.value)
            return


async def run_record(
    state: AttemptState, index: int, seed_pos: int, seed: dict[str, Any], pledges: PledgeBook
) -> FinishedRecord | None:
    """Every step of one record, else the steps it made (``complete`` false), else None.

    A record stops at a step it cannot call (stopped job, lease exhausted, a
    failure); the usage of its calls becomes orphan usage either way. A step
    whose answers its schema never validated ends the record there, complete
    and marked ``invalid``: the export rejects it (its calls are in the usage).
    """
    steps = state.msg.template.steps
    prior = state.partial.get(index)
    record = prior.resumed() if prior else state.draws.record(index, seed_pos)
    known: dict[str, int] = {}
    calls = ModelCalls(state, index)
    draws = record_draws(state.msg.job_id, index)
    first = state.first_steps.get(seed_pos)
    try:
        for k, step in enumerate(steps):
            if step.id in record.outputs:
                continue  # an earlier attempt made and reported it
            if k == 0 and first is not None:
                prompt, system = first  # rendered when the seed was checked
            else:
                context = step_context(seed, record.outputs, record.variables)
                prompt, system = await render_step(state.rt.renderer, step, k, context, draws)
            output = for_step(step, state.rt.structured)
            bound_system = step.bound_system(system)
            worst = rendered_call_worst_case(
                state.prices[step.model], prompt, bound_system, step.max_tokens, step.cache_prompt
            )
            known[step.id] = worst
            state.observed[step.id] = max(worst, state.observed.get(step.id, 0))
            pledges.draw(index, worst)
            result, record.outputs[step.id] = await calls.answer(
                step, prompt, system, worst, output
            )
            record.models[step.id] = step.model
            record.usage[step.id] = (result.input_tokens, result.output_tokens)
            if result.cache_read_tokens or result.cache_write_tokens:
                record.cached[step.id] = (result.cache_read_tokens, result.cache_write_tokens)
    except Exhausted:
        state.exhausted = True
        estimate = record_worst_case(steps, state.prices, seed_bytes(seed), known, state.observed)
        state.needed = max(state.needed, estimate)
    except (Stopped, ModelUnavailableError) as exc:
        state.halt(exc)
    except InvalidOutputError as exc:
        record.invalid = {"step": step.id, "error": str(exc)[:1000]}
        log.info("record_invalid_output", record=index, step=step.id)
        return record
    except Exception as exc:
        fail_record(state, exc, index, seed_pos)
    else:
        return record
    state.orphan.merge(record.tally())
    if not record.outputs:
        return None
    record.complete = False
    return record


def fail_record(state: AttemptState, exc: Exception, index: int, seed_pos: int) -> None:
    """End the attempt for an error that ended record ``index`` (retryable unless certain)."""
    if isinstance(exc, ClaimLapsedError):
        state.fail("the claim on the lease lapsed (renewals failed)", retryable=True)
    elif isinstance(exc, TemplateError):
        state.fail(f"record {index} (seed record {seed_pos}): {exc}", retryable=False)
    elif isinstance(exc, ModelCallError):
        state.fail(f"record {index}: model call failed: {exc}", retryable=exc.retryable)
    else:
        log.exception("record_failed", record=index)
        state.fail(f"record {index}: {type(exc).__name__}: {exc}", retryable=True)
