"""``/templates``: multi-step prompt templates."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter

from palette.gateway.jobs import now_ms
from palette.gateway.openapi import problems
from palette.gateway.ports import Runtime
from palette.gateway.problems import not_found
from palette.gateway.schemas import CreateTemplate, TemplateView
from palette.gateway.templating import check_template, template_document, template_view


class TemplateController(Controller):
    """Create and read templates; a template is its owner's unless public."""

    path = "/templates"
    tags = ["templates"]

    @post(
        operation_id="createTemplate",
        summary="Create a template (version 1)",
        responses=problems(422),
    )
    async def create(
        self,
        data: JSONBody[CreateTemplate],
        runtime: NamedDependency[Runtime],
        owner: NamedDependency[str],
    ) -> TemplateView:
        """Validate the template completely, then store version 1.

        Syntax, unique step ids, references to earlier steps only and priced
        models are checked first; nothing is written when any check fails.
        """
        spec, requirements = check_template(data, runtime.pricing)
        doc = template_document(
            template_id=uuid.uuid4().hex,
            version=1,
            owner=owner,
            request=data,
            spec=spec,
            requirements=requirements,
            now=now_ms(),
        )
        await runtime.repository.insert_template(doc)
        return template_view(doc)

    @get(
        "/{template_id:str}",
        operation_id="getTemplate",
        summary="Read a template version",
        responses=problems(404, 422),
    )
    async def read(
        self,
        template_id: FromPath[str],
        runtime: NamedDependency[Runtime],
        owner: NamedDependency[str],
        version: Annotated[
            int | None, QueryParameter(ge=1, description="Latest when omitted.")
        ] = None,
    ) -> TemplateView:
        """One version (the latest by default) of the caller's or a public template."""
        doc = await runtime.repository.find_template(template_id, owner, version)
        if doc is None:
            which = f"version {version} of " if version is not None else ""
            raise not_found("template_id", f"no {which}template {template_id!r}")
        return template_view(doc)
