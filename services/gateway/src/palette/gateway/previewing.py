"""Template preview without a model call: render each step, bound its tokens, price the worst case.

An earlier step's output is unknown before the model runs, so it renders as a
placeholder, and the bound on a later step's input counts each use of it at
its maximum (``palette.common.estimates.output_bytes``): the one rule the
scheduler and the generator apply too, so a step's worst case here is the
generator's check before that call whenever the earlier outputs are as large
as counted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from palette.common.estimates import call_worst_case, output_bytes, pending_input_bound
from palette.common.money import usd_string
from palette.common.output_schema import probe_output
from palette.common.pricing import PricingTable
from palette.common.templates import Step, TemplateSpec, render, step_context
from palette.gateway.schemas import StepPreviewView
from palette.gateway.templating import time_slices

PLACEHOLDER = "<output of step {}>"
_SENTINEL = "\x00{}\x00"


def _source_uses(source: str | None, step_id: str) -> int:
    if not source:
        return 0
    pattern = rf"steps\s*(?:\.\s*{step_id}\b|\[\s*['\"]{step_id}['\"]\s*\])"
    return len(re.findall(pattern, source))


def _render(source: str, context: dict[str, Any], field: str, seconds: float) -> str:
    return render(source, context, field=field, seconds=seconds)


def _render_step(
    step: Step, k: int, context: dict[str, Any], slices: Iterator[float]
) -> tuple[str, str | None]:
    """A step's rendered prompt, and the system text its call carries."""
    prompt = _render(step.prompt, context, f"steps[{k}].prompt", next(slices))
    system = (
        _render(step.system, context, f"steps[{k}].system", next(slices)) if step.system else None
    )
    return prompt, step.call_system(system)


def preview_steps(
    spec: TemplateSpec,
    seed: dict[str, Any],
    pricing: PricingTable,
    seconds: float = 1.0,
    variables: dict[str, Any] | None = None,
) -> tuple[list[StepPreviewView], int]:
    """Each step's rendered prompt, input bound and worst case; and the record's worst case.

    Every render together may take ``seconds``.

    Raises:
        TemplateError: a step cannot be rendered with this seed (RenderLimitError:
            it breaks a size limit, or the renders took longer than ``seconds``).
        UnknownModelError: a step's model has no price.
    """
    sentinels = {step.id: _SENTINEL.format(k) for k, step in enumerate(spec.steps)}
    views: list[StepPreviewView] = []
    total = 0
    slices = time_slices(seconds)
    for k, step in enumerate(spec.steps):
        earlier = {s.id: probe_output(s.answer_schema, sentinels[s.id]) for s in spec.steps[:k]}
        context = step_context(seed, earlier, variables)
        prompt, system = _render_step(step, k, context, slices)
        extra_bytes = 0
        for prior in spec.steps[:k]:
            mark = sentinels[prior.id]
            uses = max(
                prompt.count(mark) + (system or "").count(mark),
                _source_uses(step.prompt, prior.id) + _source_uses(step.system, prior.id),
            )
            extra_bytes += uses * output_bytes(prior.max_tokens)
            prompt = prompt.replace(mark, PLACEHOLDER.format(prior.id))
            system = system.replace(mark, PLACEHOLDER.format(prior.id)) if system else system
        bare_prompt, bare_system = prompt, system
        for prior in spec.steps[:k]:
            shown = PLACEHOLDER.format(prior.id)
            bare_prompt = bare_prompt.replace(shown, "")
            bare_system = bare_system.replace(shown, "") if bare_system is not None else None
        bare_system = step.bound_system(bare_system)
        bound = pending_input_bound(bare_prompt, bare_system, extra_bytes)
        worst = call_worst_case(
            pricing.price(step.model), bound, step.max_tokens, step.cache_prompt
        )
        total += worst
        views.append(
            StepPreviewView(
                id=step.id,
                model=step.model,
                prompt=prompt,
                system=system,
                input_tokens=bound,
                max_tokens=step.max_tokens,
                worst_case_usd=usd_string(worst),
            )
        )
    return views, total
