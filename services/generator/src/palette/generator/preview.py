"""Template preview with ``run``: one record through the model, answered by request/reply.

The gateway reserves the record's worst case from the owner's preview budget
(accounting), then sends ``PreviewRecord`` with a reply-to address and waits;
the reply is the return value (FastStream publishes it to the caller's reply
queue). A request never fails once parsed, but for a report of its spend the
broker did not take: any other failure is in the reply's ``error``, so the
broker does not redeliver it and the model is not called twice.
Each call's worst case must fit in what is left of ``max_cost`` before it is made,
and a request read after its deadline (the caller gave up) calls nothing.

Every request read ends with ``PreviewCompleted``: what the calls cost (a call
whose outcome is unknown at its worst case), which settles the reservation. A
request delivered again (its first delivery's process died, or its channel
closed, while it ran) is not run again: the first delivery may have called the
model, so it is settled at its whole ``max_cost`` unless the first delivery's
report came first.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import structlog

from palette.common import messages as m
from palette.common.estimates import rendered_call_worst_case
from palette.common.output_schema import OutputInvalidError
from palette.common.pricing import UnknownModelError
from palette.common.structured_support import NoStructuredOutputError
from palette.common.templates import Step, TemplateError, step_context
from palette.common.token_bounds import input_token_bound
from palette.generator.bedrock import ModelCallError, ModelRequest, ModelResult
from palette.generator.generation import render_step
from palette.generator.runtime import GeneratorRuntime
from palette.generator.slots import PREVIEW
from palette.generator.structured import StructuredOutput, for_step

log = structlog.get_logger("palette.generator.preview")


class PreviewStop(Exception):
    """The preview cannot go on; the message says why."""


@dataclass
class Spend:
    """What a preview's calls used so far, and the worst case of calls of unknown outcome."""

    usage: list[m.StepUsage] = field(default_factory=list)
    unknown_worst: int = 0

    def completed(self, msg: m.PreviewRecord) -> m.PreviewCompleted:
        """The report that settles the preview's reservation."""
        return m.PreviewCompleted(
            message_id=m.preview_completed_id(msg.message_id),
            preview_id=msg.message_id,
            owner=msg.owner,
            usage=tuple(self.usage),
            unknown_worst=self.unknown_worst,
        )


async def _call(
    rt: GeneratorRuntime, request: ModelRequest, worst: int, spend: Spend
) -> ModelResult:
    """One call in a preview slot; a call that may have run adds its worst case to ``spend``.

    It takes its reservation from the model's quota bucket first, like a partition's.
    """
    pacer = rt.quotas.pacer(request.model_id)
    schema = None if request.output is None else request.output.text
    ask = input_token_bound(request.prompt, "\n".join(filter(None, [request.system, schema])))
    ask += request.max_tokens
    ticket = pacer.try_take(ask) or await pacer.take(ask)
    async with rt.call_slots.hold(PREVIEW):
        try:
            result = await rt.models.converse(request)
        except ModelCallError as exc:
            pacer.failed(ticket, exc.code, exc.maybe_billed)
            spend.unknown_worst += worst if exc.maybe_billed else 0
            raise
        except BaseException:
            spend.unknown_worst += worst  # cut short: it may have run
            raise
    pacer.settle(ticket, result.input_tokens + result.cache_write_tokens, result.output_tokens)
    return result


def _usage(step: Step, result: ModelResult) -> m.StepUsage:
    """The usage of one answered call of a step."""
    return m.StepUsage(
        step_id=step.id,
        model_id=step.model,
        calls=1,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        cache_read_tokens=result.cache_read_tokens,
        cache_write_tokens=result.cache_write_tokens,
    )


def _value(result: ModelResult, output: StructuredOutput | None) -> Any:
    """A step's answer: its text, or the value its schema validates (OutputInvalidError)."""
    return result.text if output is None else output.parse(result.text, result.tool_input)


async def run_preview(msg: m.PreviewRecord, rt: GeneratorRuntime, spend: Spend) -> m.PreviewResult:
    """Render and call each step in order; stop at the first problem. Usage goes to ``spend``."""
    steps: list[m.StepPreview] = []
    outputs: dict[str, Any] = {}
    spent = 0
    try:
        for k, step in enumerate(msg.template.steps):
            context = step_context(msg.seed, outputs, msg.variables)
            prompt, system = await render_step(rt.renderer, step, k, context)
            price = rt.pricing.price(step.model)
            bound = step.bound_system(system)
            worst = rendered_call_worst_case(
                price, prompt, bound, step.max_tokens, step.cache_prompt
            )
            if spent + worst > msg.max_cost:
                raise PreviewStop(
                    f"step {step.id!r}: its worst case ({worst} picodollars) does not fit in "
                    f"what is left of the preview's cap ({msg.max_cost - spent})"
                )
            request = ModelRequest.of_step(
                step,
                prompt,
                system,
                metadata={"preview_id": msg.message_id, "owner": msg.owner, "step": step.id},
                output=(output := for_step(step, rt.structured)),
            )
            result = await _call(rt, request, worst, spend)
            usage = _usage(step, result)
            spend.usage.append(usage)
            cached = (usage.cache_read_tokens, usage.cache_write_tokens)
            cost = price.cost(result.input_tokens, result.output_tokens, *cached)
            spent += cost
            outputs[step.id] = value = _value(result, output)
            steps.append(
                m.StepPreview(
                    step_id=step.id,
                    model_id=step.model,
                    prompt=prompt,
                    system=system,
                    output=value if isinstance(value, str) else json.dumps(value),
                    input_tokens=result.input_tokens,
                    output_tokens=result.output_tokens,
                    cost=cost,
                    cache_read_tokens=usage.cache_read_tokens,
                    cache_write_tokens=usage.cache_write_tokens,
                )
            )
    except (PreviewStop, TemplateError, UnknownModelError, NoStructuredOutputError) as exc:
        return m.PreviewResult(steps=tuple(steps), cost=spent, error=str(exc)[:2000])
    except OutputInvalidError as exc:
        error = f"step {step.id!r}: {exc}"
        return m.PreviewResult(steps=tuple(steps), cost=spent, error=error[:2000])
    except ModelCallError as exc:
        error = f"model call failed: {exc}"[:2000]
        return m.PreviewResult(steps=tuple(steps), cost=spent, error=error)
    return m.PreviewResult(steps=tuple(steps), cost=spent)


async def answer_preview(
    msg: m.PreviewRecord, rt: GeneratorRuntime, *, redelivered: bool
) -> m.PreviewResult:
    """Answer one preview request (the handler returns it as the reply); report its spend first."""
    # What it spent is published before the reply; a failed publish fails the
    # handler and the request comes back as a redelivery, settled at its worst.
    with structlog.contextvars.bound_contextvars(message_id=msg.message_id, owner=msg.owner):
        spend = Spend()
        result = await _answer(msg, rt, spend, redelivered=redelivered)
        await rt.publish(spend.completed(msg))
        log.info(
            "preview_done",
            steps=len(result.steps),
            cost=result.cost,
            unknown_worst=spend.unknown_worst,
            error=result.error,
        )
        return result


async def _answer(
    msg: m.PreviewRecord, rt: GeneratorRuntime, spend: Spend, *, redelivered: bool
) -> m.PreviewResult:
    if redelivered:
        log.warning("preview_redelivered", max_cost=msg.max_cost)
        spend.unknown_worst = msg.max_cost
        return m.PreviewResult(error="the preview was interrupted; run it again")
    if m.utcnow() >= msg.deadline:
        log.warning("preview_expired", deadline=msg.deadline.isoformat())
        return m.PreviewResult(error="the preview request expired before it was read")
    try:
        return await run_preview(msg, rt, spend)
    except Exception as exc:  # never redeliver a preview: the model may have run
        log.exception("preview_failed")
        return m.PreviewResult(error=f"preview failed: {type(exc).__name__}: {exc}"[:2000])
