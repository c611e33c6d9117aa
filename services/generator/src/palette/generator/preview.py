"""Template preview with ``run``: one record through the model, answered by request/reply.

The gateway sends ``PreviewRecord`` with a reply-to address and waits; the
reply is the return value (FastStream publishes it to the caller's reply
queue). A request never raises once parsed: any failure is in the reply's
``error``, so the broker never redelivers it and the model is not called twice.
Each call's worst case must fit in what is left of ``max_cost`` before it is made,
and a request read after its deadline (the caller gave up) calls nothing.
"""

from __future__ import annotations

from typing import Annotated

import structlog

from palette.common import messages as m
from palette.common.broker import Context
from palette.common.pricing import UnknownModelError
from palette.common.templates import TemplateError, step_context
from palette.generator.bedrock import ModelCallError, ModelRequest
from palette.generator.budget import call_worst_case
from palette.generator.generation import render_step
from palette.generator.runtime import CONTEXT_KEY, Runtime
from palette.generator.slots import PREVIEW

log = structlog.get_logger("palette.generator.preview")


class PreviewStop(Exception):
    """The preview cannot go on; the message says why."""


async def run_preview(msg: m.PreviewRecord, rt: Runtime) -> m.PreviewResult:
    """Render and call each step in order; stop at the first problem."""
    steps: list[m.StepPreview] = []
    outputs: dict[str, str] = {}
    spent = 0
    try:
        for k, step in enumerate(msg.template.steps):
            context = step_context(msg.seed, outputs)
            prompt, system = await render_step(rt.renderer, step, k, context)
            price = rt.pricing.price(step.model)
            worst = call_worst_case(price, step, prompt, system)
            if spent + worst > msg.max_cost:
                raise PreviewStop(
                    f"step {step.id!r}: its worst case ({worst} picodollars) does not fit in "
                    f"what is left of the preview's cap ({msg.max_cost - spent})"
                )
            request = ModelRequest(
                model_id=step.model,
                prompt=prompt,
                system=system,
                max_tokens=step.max_tokens,
                temperature=step.temperature,
                metadata={"preview_id": msg.message_id, "owner": msg.owner, "step": step.id},
            )
            async with rt.call_slots.hold(PREVIEW):
                result = await rt.models.converse(request)
            cost = price.cost(result.input_tokens, result.output_tokens)
            spent += cost
            outputs[step.id] = result.text
            steps.append(
                m.StepPreview(
                    step_id=step.id,
                    model_id=step.model,
                    prompt=prompt,
                    system=system,
                    output=result.text,
                    input_tokens=result.input_tokens,
                    output_tokens=result.output_tokens,
                    cost=cost,
                )
            )
    except (PreviewStop, TemplateError, UnknownModelError) as exc:
        return m.PreviewResult(steps=tuple(steps), cost=spent, error=str(exc)[:2000])
    except ModelCallError as exc:
        error = f"model call failed: {exc}"[:2000]
        return m.PreviewResult(steps=tuple(steps), cost=spent, error=error)
    return m.PreviewResult(steps=tuple(steps), cost=spent)


async def preview_record(
    msg: m.PreviewRecord, rt: Annotated[Runtime, Context(CONTEXT_KEY)]
) -> m.PreviewResult:
    """Answer one preview request (the reply goes to the request's reply-to)."""
    with structlog.contextvars.bound_contextvars(message_id=msg.message_id, owner=msg.owner):
        if m.utcnow() >= msg.deadline:
            log.warning("preview_expired", deadline=msg.deadline.isoformat())
            return m.PreviewResult(error="the preview request expired before it was read")
        try:
            result = await run_preview(msg, rt)
        except Exception as exc:  # never redeliver a preview: the model may have run
            log.exception("preview_failed")
            return m.PreviewResult(error=f"preview failed: {type(exc).__name__}: {exc}"[:2000])
        log.info("preview_done", steps=len(result.steps), cost=result.cost, error=result.error)
        return result
