"""A batch-mode step's few records called online (fewer than a batch job takes).

Bedrock takes no batch inference job under ``batch_min_records`` records, so
the last records of a step (a small partition, entries that failed in a batch)
are called through Converse at the default tier, and priced there. They go
through ``ModelCalls`` as every online call does (``tier`` default): the model's
quota bucket shared by the generators (``quota_pacer``), a call slot of the
process, the stop and claim checks, the reservation of the call's worst case at
the on-demand price, throttles waited out and failures retried; their usage
rows carry the rate ``default`` (``UsageTally.add``'s ``rate``), so the ledger
prices them as Bedrock bills them. A call that still failed leaves its record
to do (the next round retries it); a call that may have been billed without an
answer holds its reservation under its call id, as in online mode.
"""

from __future__ import annotations

import asyncio

import structlog

from palette.common.estimates import rendered_call_worst_case
from palette.common.service_tiers import ServiceTier
from palette.common.templates import Step
from palette.generator.bedrock import ModelCallError
from palette.generator.calls import ClaimLapsedError, Exhausted, ModelCalls, Stopped
from palette.generator.pacing import ModelUnavailableError
from palette.generator.records import FinishedRecord
from palette.generator.state import AttemptState

log = structlog.get_logger("palette.generator.batch")

ONLINE = ServiceTier.DEFAULT


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
    calls = ModelCalls(state, record.index, tier=ONLINE)
    worst = rendered_call_worst_case(calls.price(step.model), prompt, system, step.max_tokens)
    try:
        result = await calls.call(step, prompt, system, worst)
    except Exhausted:
        state.exhausted = True
        state.needed = max(state.needed, worst)
        return
    except (Stopped, ModelUnavailableError) as exc:
        state.halt(exc)
        return
    except ClaimLapsedError:
        state.fail("the claim on the lease lapsed (renewals failed)", retryable=True)
        return
    except ModelCallError as exc:
        log.info("batch_online_call_failed", record=record.index, step=step.id, error=str(exc))
        if not exc.retryable:
            state.fail(f"record {record.index}: model call failed: {exc}", retryable=False)
        return
    record.outputs[step.id] = result.text
    record.models[step.id] = step.model
    record.usage[step.id] = (result.input_tokens, result.output_tokens)
    if result.cache_read_tokens or result.cache_write_tokens:
        record.cached[step.id] = (result.cache_read_tokens, result.cache_write_tokens)
    record.rates[step.id] = ONLINE.value
