"""A batch-mode step's few records called online (fewer than a batch job takes).

Bedrock takes no batch inference job under ``batch_min_records`` records, so
the last records of a step (a small partition, entries that failed in a batch)
are called through Converse at the default tier, and priced there: each call
reserves its worst case at the on-demand price, settles at its usage, and its
usage row carries the rate ``default`` (``UsageTally.add``'s ``rate``), so the
ledger prices it as Bedrock bills it. A failed call leaves its record to do
(the next round retries it); a call that may have been billed without an
answer holds its reservation under its call id, as in online mode.
"""

from __future__ import annotations

import asyncio

import structlog

from palette.common.estimates import rendered_call_worst_case
from palette.common.service_tiers import ServiceTier
from palette.common.templates import Step
from palette.generator.bedrock import ModelCallError, ModelRequest
from palette.generator.records import FinishedRecord
from palette.generator.state import AttemptState

log = structlog.get_logger("palette.generator.batch")

ONLINE = ServiceTier.DEFAULT.value


async def call_online(
    state: AttemptState, step: Step, entries: list[tuple[FinishedRecord, str, str | None]]
) -> None:
    """Call the model online for each record's step (``settings.concurrency`` at a time)."""
    gate = asyncio.Semaphore(state.rt.settings.concurrency)

    async def one(record: FinishedRecord, prompt: str, system: str | None) -> None:
        async with gate:
            if not state.halted():
                await call_one(state, step, record, prompt, system)

    await asyncio.gather(*(one(*entry) for entry in entries))


async def call_one(
    state: AttemptState, step: Step, record: FinishedRecord, prompt: str, system: str | None
) -> None:
    """One record's call of the step; its output in ``record`` when it answered."""
    msg, rt = state.msg, state.rt
    price = rt.pricing.price(step.model)
    worst = rendered_call_worst_case(price, prompt, system, step.max_tokens)
    reservation = state.guard.try_reserve(worst)
    if reservation is None:
        state.exhausted = True
        state.needed = max(state.needed, worst)
        return
    call_id = state.claim.call_id()
    request = ModelRequest(
        model_id=step.model,
        prompt=prompt,
        system=system,
        max_tokens=step.max_tokens,
        temperature=step.temperature,
        metadata={
            "job_id": msg.job_id,
            "partition": str(msg.partition),
            "attempt": str(msg.attempt),
            "lease_id": msg.lease_id,
            "record": str(record.index),
            "step": step.id,
            "call_attempt": "1",
            "call_id": call_id,
            "holder": state.claim.holder,
        },
        service_tier=ONLINE,
    )
    try:
        result = await rt.models.converse(request)
    except ModelCallError as exc:
        log.info("batch_online_call_failed", record=record.index, step=step.id, error=str(exc))
        if exc.maybe_billed:
            state.guard.hold(reservation, call_id)
        else:
            state.guard.release(reservation)
        return
    i, o = result.input_tokens, result.output_tokens
    state.guard.settle(reservation, price.cost(i, o))
    state.usage.add(step.id, step.model, i, o, rate=ONLINE)
    record.outputs[step.id] = result.text
    record.models[step.id] = step.model
    record.usage[step.id] = (i, o)
    record.rates[step.id] = ONLINE
