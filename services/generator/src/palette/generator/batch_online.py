"""A batch-mode step's few records called online (fewer than a batch job takes).

Bedrock takes no batch inference job under ``batch_min_records`` records, so
the last records of a step (a small partition, entries that failed in a batch)
are called through Converse at the default tier, and priced there. They go
through ``ModelCalls`` as every online call does (``tier`` default): the model's
quota bucket shared by the generators (``quota_pacer``), a call slot of the
process, the stop and claim checks, the reservation of the call's worst case at
the on-demand price, throttles waited out and failures retried; their usage
rows carry the rate ``default`` (``UsageTally.add``'s ``rate``), so the ledger
prices them as Bedrock bills them. A structured step's call asks for its schema
as every online call does, and its answer is checked by the step's
``StepAnswers`` as a batch entry's is (an invalid one is asked again in the
next round). A call that still failed leaves its record to do (the next round
retries it); a call that may have been billed without an answer holds its
reservation under its call id, as in online mode.
"""

from __future__ import annotations

import asyncio

import structlog

from palette.common.estimates import rendered_call_worst_case
from palette.common.service_tiers import ServiceTier
from palette.generator.batch_answers import StepAnswers
from palette.generator.bedrock import ModelCallError
from palette.generator.calls import ClaimLapsedError, Exhausted, ModelCalls, Stopped
from palette.generator.pacing import ModelUnavailableError
from palette.generator.records import FinishedRecord
from palette.generator.state import AttemptState

log = structlog.get_logger("palette.generator.batch")

ONLINE = ServiceTier.DEFAULT


async def call_online(
    state: AttemptState,
    answers: StepAnswers,
    entries: list[tuple[FinishedRecord, str, str | None]],
) -> None:
    """Call the model online for each record's step (``settings.concurrency`` at a time)."""
    gate = asyncio.Semaphore(state.rt.settings.concurrency)

    async def one(record: FinishedRecord, prompt: str, system: str | None) -> None:
        async with gate:
            if not state.halted():
                await call_one(state, answers, record, prompt, system)

    await asyncio.gather(*(one(*entry) for entry in entries))


async def call_one(
    state: AttemptState,
    answers: StepAnswers,
    record: FinishedRecord,
    prompt: str,
    system: str | None,
) -> None:
    """One record's call of the step; its answer to ``answers`` when it answered."""
    step = answers.step
    calls = ModelCalls(state, record.index, tier=ONLINE)
    bound = step.bound_system(system)  # a schema counts as input
    worst = rendered_call_worst_case(calls.price(step.model), prompt, bound, step.max_tokens)
    try:
        result = await calls.call(step, prompt, system, worst, answers.output)
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
    answers.take(record, result, ONLINE.value)
