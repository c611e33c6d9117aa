"""Pure template logic: validation of a new template, its document and its view.

Validation parses every step (syntax, nesting, dunder attributes, references
to earlier steps), prices every model, then renders each step once with a
probe seed (every required field a short placeholder string): a template that
breaks a size or time limit or a sandbox rule with such a seed would do so with
any seed, and is refused before it is stored.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from palette.common import record_filters
from palette.common.pricing import PricingTable, UnknownModelError
from palette.common.samplers import probe_variables
from palette.common.structured_support import (
    NoStructuredOutputError,
    StructuredSupport,
    load_support,
)
from palette.common.templates import (
    RenderLimitError,
    SandboxError,
    TemplateError,
    TemplateSpec,
    analyse,
    render,
    step_context,
)
from palette.gateway.problems import FieldError, Problem, errors_from_pydantic, field_error
from palette.gateway.schemas import CreateTemplate, StepOut, TemplateView

Document = dict[str, Any]


def template_id_of(template_id: str, version: int) -> str:
    """The ``_id`` of a template version."""
    return f"{template_id}:{version}"


def _invalid(errors: list[FieldError]) -> Problem:
    summary = "; ".join(f"{e['field']}: {e['problem']}" for e in errors[:5])
    return Problem(422, f"invalid template: {summary}", errors=errors)


def unpriced_models(steps: list[Any], pricing: PricingTable) -> list[FieldError]:
    """One error per step whose model has no price or, caching its prompt, no cache prices.

    The errors name ``steps[i].model`` and ``steps[i].cache_prompt``.
    """
    errors = []
    for index, step in enumerate(steps):
        fields = step if isinstance(step, dict) else step.model_dump()
        model = fields["model"]
        try:
            cache = pricing.cache(model)
        except UnknownModelError as exc:
            errors.append(field_error(f"steps[{index}].model", str(exc)))
            continue
        if fields.get("cache_prompt") and cache is None:
            problem = f"model {model!r} has no prompt caching (no cache prices in the table)"
            errors.append(field_error(f"steps[{index}].cache_prompt", problem))
    return errors


def unstructured_models(steps: list[Any], support: StructuredSupport) -> list[FieldError]:
    """One error per structured step whose model cannot answer a schema."""
    errors = []
    for index, step in enumerate(steps):
        if step.kind == "judge" or step.output_schema is not None:
            try:
                support.entry(step.model)
            except NoStructuredOutputError as exc:
                errors.append(field_error(f"steps[{index}].model", str(exc)))
    return errors


PROBE = "x"
"""The value of every seed field and earlier output in a template's trial render."""


def probe_seed(requirements: list[str]) -> dict[str, Any]:
    """A seed record that has every required dotted path, each leaf the string ``PROBE``."""
    seed: dict[str, Any] = {}
    for path in requirements:
        *parents, leaf = path.split(".")
        node = seed
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node.setdefault(leaf, PROBE)
    return seed


def time_slices(seconds: float) -> Iterator[float]:
    """The time left of a budget of ``seconds``, read each time a render starts.

    Raises:
        RenderLimitError: once the budget is spent.
    """
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise RenderLimitError("template", f"rendering took longer than {seconds:g}s")
        yield left


def trial_render(spec: TemplateSpec, requirements: list[str], seconds: float) -> None:
    """Render every step with a probe seed, within ``seconds`` in all.

    Errors that depend on the seed's values (a missing key, a type) are left
    for the real seed; a limit or a sandbox rule broken here is the template's.

    Raises:
        Problem: 422 naming the step field that breaks a limit or the sandbox.
    """
    seed = probe_seed(requirements)
    outputs: dict[str, str] = {}
    slices = time_slices(seconds)
    for index, step in enumerate(spec.steps):
        context = step_context(seed, outputs, probe_variables(spec.variables))
        for name in ("prompt", "system"):
            source = getattr(step, name)
            if source is None:
                continue
            field = f"steps[{index}].{name}"
            try:
                render(source, context, field=field, seconds=next(slices))
            except (RenderLimitError, SandboxError) as exc:
                raise _invalid([field_error(field, exc.problem)]) from None
            except TemplateError:
                continue
        outputs[step.id] = PROBE


def check_template(
    request: CreateTemplate,
    pricing: PricingTable,
    render_seconds: float = 1.0,
    support: StructuredSupport | None = None,
) -> tuple[TemplateSpec, list[str]]:
    """Validate a new template and return it with its seed field requirements.

    Checks unique step ids, Jinja2 syntax, references to earlier steps only,
    that every model has a price, that a structured step's (``output_schema``,
    ``judge``) model can answer a schema (``support``: default the shipped
    table), that later steps read only fields of a schema, and a trial render within the limits
    (``trial_render``, ``render_seconds`` for all steps).

    Raises:
        Problem: 422 naming every invalid field.
    """
    errors: list[FieldError] = []
    seen: dict[str, int] = {}
    for index, step in enumerate(request.steps):
        if step.id in seen:
            errors.append(
                field_error(
                    f"steps[{index}].id",
                    f"duplicate step id {step.id!r} (first at steps[{seen[step.id]}])",
                )
            )
        seen.setdefault(step.id, index)
    errors.extend(unpriced_models(list(request.steps), pricing))
    errors.extend(unstructured_models(list(request.steps), support or load_support(None)))
    if errors:
        raise _invalid(errors)
    try:
        spec = TemplateSpec.model_validate(
            {
                "steps": [s.model_dump() for s in request.steps],
                "variables": request.variables,
                "keep_if": request.keep_if,
            }
        )
        requirements = analyse(spec)
        record_filters.check(spec, spec.keep_if, None)
    except ValidationError as exc:
        raise _invalid(errors_from_pydantic(exc)) from exc
    except TemplateError as exc:
        raise _invalid([field_error(exc.field, exc.problem)]) from exc
    trial_render(spec, requirements, render_seconds)
    return spec, requirements


def template_document(
    *,
    template_id: str,
    version: int,
    owner: str,
    request: CreateTemplate,
    spec: TemplateSpec,
    requirements: list[str],
    now: datetime,
) -> Document:
    """The ``templates`` document of one version (see docs/internals.md)."""
    return {
        "_id": template_id_of(template_id, version),
        "template_id": template_id,
        "version": version,
        "owner": owner,
        "name": request.name,
        "public": request.public,
        "steps": [step.model_dump() for step in spec.steps],
        "variables": {name: s.model_dump(mode="json") for name, s in spec.variables.items()},
        "keep_if": spec.keep_if,
        "schema_requirements": requirements,
        "created_at": now,
    }


def copy_document(
    source: Document, *, template_id: str, owner: str, name: str | None, now: datetime
) -> Document:
    """A fork: version 1 of a new private template with the source version's steps."""
    return {
        "_id": template_id_of(template_id, 1),
        "template_id": template_id,
        "version": 1,
        "owner": owner,
        "name": name or source["name"],
        "public": False,
        "steps": [dict(step) for step in source["steps"]],
        "variables": dict(source.get("variables") or {}),
        "keep_if": source.get("keep_if"),
        "schema_requirements": list(source.get("schema_requirements", [])),
        "forked_from": template_id_of(source["template_id"], int(source["version"])),
        "created_at": now,
    }


def template_view(doc: Document, owner: str | None = None) -> TemplateView:
    """The API view of a template document (``owned`` is about ``owner`` when given)."""
    return TemplateView(
        id=doc["template_id"],
        version=doc["version"],
        name=doc["name"],
        public=bool(doc.get("public", False)),
        owned=owner is None or doc.get("owner") == owner,
        steps=[StepOut.model_validate(step) for step in doc["steps"]],
        variables=doc.get("variables") or {},
        keep_if=doc.get("keep_if"),
        schema_requirements=list(doc.get("schema_requirements", [])),
        forked_from=doc.get("forked_from"),
        created_at=doc["created_at"],
    )
