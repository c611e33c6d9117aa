"""Pure template logic: validation of a new template, its document and its view."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from palette.common.pricing import PricingTable, UnknownModelError
from palette.common.templates import TemplateError, TemplateSpec, analyse
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
    """One error per step whose model has no price, naming ``steps[i].model``."""
    errors = []
    for index, step in enumerate(steps):
        model = step["model"] if isinstance(step, dict) else step.model
        try:
            pricing.price(model)
        except UnknownModelError as exc:
            errors.append(field_error(f"steps[{index}].model", str(exc)))
    return errors


def check_template(
    request: CreateTemplate, pricing: PricingTable
) -> tuple[TemplateSpec, list[str]]:
    """Validate a new template and return it with its seed field requirements.

    Checks unique step ids, Jinja2 syntax, references to earlier steps only,
    and that every model has a price.

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
    if errors:
        raise _invalid(errors)
    try:
        spec = TemplateSpec.model_validate({"steps": [s.model_dump() for s in request.steps]})
        requirements = analyse(spec)
    except ValidationError as exc:
        raise _invalid(errors_from_pydantic(exc)) from exc
    except TemplateError as exc:
        raise _invalid([field_error(exc.field, exc.problem)]) from exc
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
        schema_requirements=list(doc.get("schema_requirements", [])),
        forked_from=doc.get("forked_from"),
        created_at=doc["created_at"],
    )
