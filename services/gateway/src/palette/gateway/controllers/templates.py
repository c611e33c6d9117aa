"""``/templates``: multi-step prompt templates with immutable versions."""

from __future__ import annotations

import asyncio
import random
import uuid
from typing import Annotated, Any

from litestar import Controller, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT
from pymongo.errors import DuplicateKeyError

from palette.common.structured_support import load_support
from palette.gateway.job_views import now_ms
from palette.gateway.openapi import problems
from palette.gateway.pagination import template_cursor, template_position
from palette.gateway.ports import GatewayRuntime
from palette.gateway.problems import Problem, field_error, not_found
from palette.gateway.schemas import (
    CreateTemplate,
    ForkTemplate,
    TemplatePage,
    TemplateVersions,
    TemplateVersionView,
    TemplateView,
)
from palette.gateway.templating import (
    check_template,
    copy_document,
    template_document,
    template_view,
)

VERSION_ATTEMPTS = 8
"""Inserts tried per update before 409; the waits between them add up to at most ~0.7 s."""
VERSION_BACKOFF = (0.01, 0.2)
"""First and longest wait (s) after a lost version; each wait is a random part of its bound."""
Version = Annotated[
    int | None, QueryParameter(ge=1, le=1_000_000_000, description="Latest when omitted.")
]


async def visible_template(
    runtime: GatewayRuntime, owner: str, template_id: str, version: int | None = None
) -> dict[str, Any]:
    """A version the caller may read (theirs or public), else 404."""
    doc = await runtime.repository.find_template(template_id, owner, version)
    if doc is None:
        which = f"version {version} of " if version is not None else ""
        raise not_found("template_id", f"no {which}template {template_id!r}")
    return doc


async def latest_own_version(runtime: GatewayRuntime, owner: str, template_id: str) -> int:
    """The number of the owner's latest version of the template, else 404."""
    latest = await runtime.repository.find_own_template(template_id, owner)
    if latest is None:
        raise not_found("template_id", f"no template {template_id!r} of yours")
    return int(latest["version"])


async def store_new(
    runtime: GatewayRuntime, owner: str, data: CreateTemplate, template_id: str, *, update: bool
) -> dict[str, Any]:
    """Validate, then insert version 1 (``update=False``) or the version after the latest.

    A replica writes one user's versions one at a time (the owner's lock), but
    other replicas write theirs at the same moment: a version number another
    replica took makes this one wait a random, growing while (so the writers
    fall out of step), read the latest version again and try the one after
    it, up to ``VERSION_ATTEMPTS`` times, then 409. Numbers stay contiguous:
    one is only ever taken by a stored version.
    """
    spec, requirements = check_template(
        data,
        runtime.pricing,
        runtime.settings.template_render_seconds,
        load_support(runtime.settings.structured_output_file),
    )
    async with runtime.locks.hold(owner):
        after = 0
        if update:
            after = await latest_own_version(runtime, owner, template_id)
        for attempt in range(VERSION_ATTEMPTS):
            doc = template_document(
                template_id=template_id,
                version=after + 1,
                owner=owner,
                request=data,
                spec=spec,
                requirements=requirements,
                now=now_ms(),
            )
            try:
                await runtime.repository.insert_template(doc)
            except DuplicateKeyError:
                if not update or attempt == VERSION_ATTEMPTS - 1:
                    break  # out of attempts; a new template has no other number to try
                first, longest = VERSION_BACKOFF
                await asyncio.sleep(random.uniform(0, min(longest, first * 2**attempt)))  # noqa: S311
                after = max(after + 1, await latest_own_version(runtime, owner, template_id))
                continue
            return doc
    raise Problem(
        409,
        f"template {template_id!r} is being updated by other requests at once; try again",
        errors=[field_error("template_id", "the next version numbers are being taken")],
        headers={"Retry-After": "1"},
    )


class TemplateController(Controller):
    """Templates are their owner's unless public; versions never change once written."""

    path = "/templates"
    tags = ["templates"]

    @post(
        operation_id="createTemplate",
        summary="Create a template (version 1)",
        status_code=HTTP_201_CREATED,
        responses=problems(413),
    )
    async def create(
        self,
        data: JSONBody[CreateTemplate],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
    ) -> TemplateView:
        """Validate the template completely, then store version 1.

        Sandbox-safe Jinja2 syntax, 1..10 steps with unique ids, every model
        priced, references to earlier steps only; the seed fields it needs come
        back as ``schema_requirements``. Nothing is written when a check fails.
        """
        doc = await store_new(runtime, owner, data, uuid.uuid4().hex, update=False)
        return template_view(doc, owner)

    @get(operation_id="listTemplates", summary="Own and public templates", responses=problems())
    async def list_templates(
        self,
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
        limit: Annotated[int, QueryParameter(ge=1, le=100, description="Page size.")] = 20,
        cursor: Annotated[
            str | None, QueryParameter(max_length=1000, description="`next_cursor` of a page.")
        ] = None,
    ) -> TemplatePage:
        """The latest version of each template the caller owns or that is public."""
        after = template_position(cursor) if cursor else None
        docs = await runtime.repository.list_templates(owner, after, limit + 1)
        page = docs[:limit]
        more = len(docs) > limit
        return TemplatePage(
            items=[template_view(doc, owner) for doc in page],
            next_cursor=template_cursor(page[-1]["template_id"]) if more else None,
        )

    @get(
        "/{template_id:str}",
        operation_id="getTemplate",
        summary="Read a template version",
        responses=problems(404),
    )
    async def read(
        self,
        template_id: FromPath[str],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
        version: Version = None,
    ) -> TemplateView:
        """One version (the latest by default) of the caller's or a public template."""
        return template_view(await visible_template(runtime, owner, template_id, version), owner)

    @put(
        "/{template_id:str}",
        operation_id="updateTemplate",
        summary="Store a new version of your template",
        responses=problems(404, 409, 413),
    )
    async def update(
        self,
        template_id: FromPath[str],
        data: JSONBody[CreateTemplate],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
    ) -> TemplateView:
        """A new immutable version (earlier versions and jobs using them do not change).

        Concurrent updates each get their own version; 409 only when the next
        version numbers keep being taken by other requests.
        """
        if await runtime.repository.find_own_template(template_id, owner) is None:
            raise not_found("template_id", f"no template {template_id!r} of yours")
        doc = await store_new(runtime, owner, data, template_id, update=True)
        return template_view(doc, owner)

    @delete(
        "/{template_id:str}",
        operation_id="deleteTemplate",
        summary="Delete your template (every version)",
        status_code=HTTP_204_NO_CONTENT,
        responses=problems(404, 409),
    )
    async def remove(
        self,
        template_id: FromPath[str],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
    ) -> None:
        """Delete every version; 409 while a queued or running job uses the template."""
        if await runtime.repository.find_own_template(template_id, owner) is None:
            raise not_found("template_id", f"no template {template_id!r} of yours")
        if await runtime.repository.template_in_use(template_id):
            raise Problem(
                409,
                f"template {template_id!r} is used by a queued or running job",
                errors=[field_error("template_id", "in use by an active job")],
            )
        await runtime.repository.delete_template(template_id, owner)

    @get(
        "/{template_id:str}/versions",
        operation_id="listTemplateVersions",
        summary="Every version of a template, newest first",
        responses=problems(404),
    )
    async def versions(
        self,
        template_id: FromPath[str],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
    ) -> TemplateVersions:
        """The versions the caller may see (all of their own; the public ones of others)."""
        docs = await runtime.repository.template_versions(template_id, owner)
        if not docs:
            raise not_found("template_id", f"no template {template_id!r}")
        return TemplateVersions(
            id=template_id,
            versions=[
                TemplateVersionView(
                    version=doc["version"],
                    name=doc["name"],
                    public=bool(doc.get("public")),
                    schema_requirements=list(doc.get("schema_requirements", [])),
                    created_at=doc["created_at"],
                )
                for doc in docs
            ],
        )

    @post(
        "/{template_id:str}/fork",
        operation_id="forkTemplate",
        summary="Copy a public (or your own) template as a new template of yours",
        status_code=HTTP_201_CREATED,
        responses=problems(404),
    )
    async def fork(
        self,
        template_id: FromPath[str],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
        data: JSONBody[ForkTemplate | None] = None,
        version: Version = None,
    ) -> TemplateView:
        """Version 1 of a new private template with the source version's steps."""
        source = await visible_template(runtime, owner, template_id, version)
        doc = copy_document(
            source,
            template_id=uuid.uuid4().hex,
            owner=owner,
            name=data.name if data else None,
            now=now_ms(),
        )
        await runtime.repository.insert_template(doc)
        return template_view(doc, owner)
