"""One attempt at a partition: generate its missing records within the lease.

See docs/internals.md ("Generator"). The attempt starts every read it needs
before its first call at once (``setup_reads.py``), then takes them in order:
it lists the parts already in its range and re-announces those written under
its own lease (their usage counts as spent), refuses a model without a price,
checks the job is not stopped and the lease not closed, checks the seeds its
missing records draw against the template, then generates (``generation.py``).
Finished records are written as parts, once each, and announced with
``RecordsGenerated``; records that stopped short are kept as
incomplete records and resumed (``incomplete.py``); the attempt ends with one
``PartitionCompleted`` or ``PartitionFailed`` carrying its whole usage under
the lease and the ids and summed worst case of its calls whose outcome is
unknown. An attempt that took the lease over from a lost holder re-announces
the parts written under the lease and ends at once with a retryable
``PartitionFailed`` naming that holder: what the holder spent besides its parts
is known only to the provider's invocation log, so nothing more may be spent
under the lease. Publishing errors propagate, so the message is redelivered.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import structlog

from palette.common import keys
from palette.common import messages as m
from palette.common.estimates import record_worst_case
from palette.common.pricing import UnknownModelError
from palette.common.service_tiers import JobMode, Rate, job_rate, rated_table
from palette.common.templates import renders_the_same
from palette.common.tracing import span
from palette.generator import metrics
from palette.generator.batch_run import generate_batch
from palette.generator.budget import LeaseGuard
from palette.generator.claims import ClaimHandle
from palette.generator.generation import generate, seed_problem
from palette.generator.incomplete import drop_completed, keep_incomplete
from palette.generator.records import FinishedRecord, PartMeta, encode_part
from palette.generator.runtime import GeneratorRuntime, Publish
from palette.generator.setup_reads import (
    ReadProblem,
    SetupReads,
    incomplete_read,
    job_stopped,
    lease_closed,
    seeds_read,
)
from palette.generator.state import AttemptState, PublishFailedError
from palette.generator.usage import UsageTally

log = structlog.get_logger("palette.generator.partition")

FIRST_STEP_CHARS_KEPT = 4_000_000
"""Characters of first-step texts an attempt keeps from checking its seeds (the rest of
its records render their first step again)."""
_END_NAMESPACE = uuid.UUID("6f1c2a52-8a8e-4a39-9f0e-2d7c4f4d1b10")


def usage_rate(msg: m.GeneratePartition) -> Rate:
    """The rate an attempt's usage rows are billed at (unless a row names its own)."""
    return "batch" if msg.mode is JobMode.BATCH else msg.service_tier


def end_message_id(command_id: str) -> str:
    """Id of an attempt's end event, derived from its command: a redelivery repeats it."""
    return uuid.uuid5(_END_NAMESPACE, f"partition-end:{command_id}").hex


async def run_partition(
    msg: m.GeneratePartition,
    rt: GeneratorRuntime,
    publish: Publish,
    claim: ClaimHandle | None = None,
) -> None:
    """Run one delivery of a ``GeneratePartition`` and publish its events.

    ``claim`` is the delivery's claim on the lease (None: a claim that never
    lapses). Raises only when publishing fails (the message is then
    redelivered); any other error ends the attempt with a retryable
    ``PartitionFailed``.
    """
    state = AttemptState(
        msg=msg,
        rt=rt,
        publish=publish,
        guard=LeaseGuard(msg.lease_amount),
        number=rt.call_slots.next_attempt(),
        claim=claim or ClaimHandle.unclaimed(),
    )
    try:
        await attempt(state)
    except PublishFailedError:
        raise
    except Exception as exc:
        log.exception("attempt_error")
        state.fail(f"generator error: {type(exc).__name__}: {exc}", retryable=True)
    if state.fatal is not None:
        raise state.fatal
    await finish(state)


async def attempt(state: AttemptState) -> None:
    """List, re-announce, check, read seeds and generate; ``finish`` publishes the end.

    Every read it needs before its first call starts at once (``setup_reads.py``).
    """
    reads = SetupReads(state.msg, state.rt)
    try:
        await attempt_with(state, reads)
    finally:
        await reads.close()


async def attempt_with(state: AttemptState, reads: SetupReads) -> None:
    """``attempt``, its reads under way."""
    msg, rt = state.msg, state.rt
    parts = await reads.parts
    covered: set[int] = set()
    for part in parts:
        if part.meta is None:
            continue
        covered.update(range(part.first, min(part.first + part.meta.records, msg.end)))
        if part.meta.lease == msg.lease_id:
            await announce(state, part.key, part.meta)
            state.usage.merge(part.meta.usage)
            state.retries.merge(part.meta.retries)
    state.covered = len(covered)
    missing = [i for i in range(msg.start, msg.end) if i not in covered]
    log.info("partition_started", missing=len(missing), reannounced_calls=state.usage.calls)
    if state.claim.lost_holder is not None:
        state.fail(
            f"took lease {msg.lease_id} over from the lost holder {state.claim.lost_holder}; "
            "the partition is retried under a new lease",
            retryable=True,
        )
        return
    try:
        pricing = rated_table(rt.pricing, job_rate(msg.mode, msg.service_tier))
        state.prices = {model: pricing.price(model) for model in msg.template.models}
        state.guard = LeaseGuard(msg.lease_amount, state.usage.cost(pricing, rt.pricing))
    except UnknownModelError as exc:
        state.fail(str(exc), retryable=False)
        missing = []
    if missing and await job_stopped(reads, rt, msg.job_id):
        state.stopped = True
    elif missing and await lease_closed(reads, msg.lease_id):
        state.exhausted = True
        state.needed = record_worst_case(msg.template.steps, state.prices, 0)
    elif missing:
        chosen = await checked_seeds(state, reads, missing)
        run = generate_batch if msg.mode is JobMode.BATCH else generate
        if chosen is not None and await take_partial(state, reads, missing):
            await run(
                state,
                missing,
                chosen,
                lambda run: write_part(state, run),
                lambda record: keep_incomplete(state, record),
            )


async def checked_seeds(
    state: AttemptState, reads: SetupReads, missing: list[int]
) -> dict[int, dict[str, Any]] | None:
    """The seeds the missing records draw, each checked against the template.

    A seed that lacks a variable the template uses fails the attempt before
    any model call, rather than after its earlier steps were paid for.
    """
    msg = state.msg
    read = await seeds_read(reads, msg.seed_key)
    if isinstance(read, ReadProblem):
        state.fail(read.error, retryable=read.retryable)
        return None
    state.draws, found = read
    drawn_by: dict[int, int] = {}  # seed position -> the first record that draws it
    for i in missing:
        drawn_by.setdefault(state.draws.position(i), i)
    chosen = {position: found[position] for position in drawn_by if position in found}
    first_step = msg.template.steps[0]
    reuse = all(renders_the_same(text) for text in (first_step.prompt, first_step.system) if text)
    kept = 0
    for position in sorted(chosen):
        await asyncio.sleep(0)  # many fast renders in a row: let the loop run between seeds
        problem, first = await seed_problem(
            state.rt.renderer,
            msg.template.steps,
            chosen[position],
            state.draws.variables(drawn_by[position]),
        )
        if problem is not None:
            state.fail(f"seed record {position}: {problem}", retryable=False)
            return None
        if reuse and first is not None:
            kept += len(first[0]) + len(first[1] or "")
            if kept <= FIRST_STEP_CHARS_KEPT:
                state.first_steps[position] = first
    return chosen


async def take_partial(state: AttemptState, reads: SetupReads, missing: list[int]) -> bool:
    """Load the incomplete records among ``missing`` into ``state.partial``; False on failure."""
    found = await incomplete_read(reads)
    if isinstance(found, ReadProblem):
        state.fail(found.error, retryable=found.retryable)
        return False
    wanted = set(missing)
    state.partial = {index: record for index, record in found.items() if index in wanted}
    if state.partial:
        log.info("incomplete_records_resumed", records=len(state.partial))
    return True


async def write_part(state: AttemptState, run: list[FinishedRecord]) -> None:
    """Write a run of records as a part (with pending orphan usage) and announce it."""
    msg = state.msg
    usage = UsageTally()
    for record in run:
        usage.merge(record.tally())
    usage.merge(state.orphan.take())
    meta = PartMeta(len(run), msg.lease_id, m.new_message_id(), usage, state.unannounced.take())
    key = keys.part_key(msg.job_id, run[0].index)
    body = encode_part(msg.job_id, run)
    try:
        with span("write part", {"palette.part_key": key, "palette.records": len(run)}):
            written = await asyncio.to_thread(state.rt.storage.put_part, key, body, meta)
    except Exception as exc:
        log.exception("part_write_failed", key=key)
        state.orphan.merge(usage)
        state.unannounced.merge(meta.retries)
        state.fail(f"writing part {key} failed: {type(exc).__name__}: {exc}", retryable=True)
        return
    if not written:
        log.warning("part_key_taken", key=key)
        state.orphan.merge(usage)
        state.unannounced.merge(meta.retries)
        return
    state.written += len(run)
    metrics.RECORDS_GENERATED.inc(len(run))
    await drop_completed(state, run)
    try:
        await announce(state, key, meta)
    except PublishFailedError as exc:  # the broker is unreachable: a redelivery re-announces
        log.exception("announce_failed", key=key)
        state.fatal = state.fatal or exc


async def announce(state: AttemptState, key: str, meta: PartMeta) -> None:
    """Publish a part's ``RecordsGenerated`` with its stored message id."""
    await state.emit(
        m.RecordsGenerated(
            message_id=meta.message,
            job_id=state.msg.job_id,
            partition=state.msg.partition,
            lease_id=meta.lease,
            part_key=key,
            records=meta.records,
            usage=meta.usage.to_step_usages(usage_rate(state.msg)),
            retries=meta.retries.to_counts(),
        )
    )
    log.info("records_generated", key=key, records=meta.records, part_message_id=meta.message)


async def finish(state: AttemptState) -> None:
    """Publish the attempt's one end event with its whole usage under the lease."""
    msg = state.msg
    done = state.covered + state.written
    missing = msg.end - msg.start - done
    unknown = state.guard.unknown
    common: dict[str, Any] = {
        "message_id": end_message_id(msg.message_id),
        "job_id": msg.job_id,
        "partition": msg.partition,
        "attempt": msg.attempt,
        "lease_id": msg.lease_id,
        "usage": state.usage.to_step_usages(usage_rate(msg)),
        "retries": state.retries.to_counts(),
        "unknown_calls": tuple(unknown),
        "unknown_worst": sum(unknown.values()),
    }
    outcome = state.outcome(missing)
    if outcome is None:
        error, retryable = state.failure or ("", True)
        lost = state.claim.lost_holder
        await state.emit(
            m.PartitionFailed(**common, error=error[:2000], retryable=retryable, lost_holder=lost)
        )
        log.warning(
            "partition_failed",
            error=error,
            retryable=retryable,
            records_done=done,
            lost_holder=lost,
            unknown_calls=len(unknown),
        )
        return
    needed = state.needed if outcome is m.PartitionOutcome.LEASE_EXHAUSTED else 0
    await state.emit(
        m.PartitionCompleted(
            **common,
            outcome=outcome,
            records_done=done,
            records_missing=missing,
            needed=needed,
            reason=(state.paused or "")[:2000],
        )
    )
    log.info(
        "partition_completed",
        outcome=outcome.value,
        records_done=done,
        records_missing=missing,
        needed=needed,
        spent=state.guard.spent,
        held=state.guard.held,
        unknown_calls=len(unknown),
        orphan_calls=state.orphan.calls,
        throttled=state.retries.throttled,
        quota_wait_ms=state.retries.waited_ms,
        reason=state.paused,
    )
