"""Template preview (rendered, or run through the model) and YAML import/export."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import structlog
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIMediaType, OpenAPIType, Operation, RequestBody, Schema
from litestar.params import FromPath, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED

from palette.common.messages import PreviewRecord, PreviewResult, utcnow
from palette.common.money import usd_string, usd_to_picos
from palette.common.pricing import PricingTable, UnknownModelError
from palette.common.samplers import preview_variables
from palette.common.seeds import missing_fields
from palette.common.templates import TemplateError, TemplateSpec
from palette.gateway.controllers.templates import Version, store_new, visible_template
from palette.gateway.estimating import RateCosts, SampleRun, rate_costs, rated_estimate
from palette.gateway.job_views import template_spec
from palette.gateway.openapi import problems
from palette.gateway.ports import GatewayRuntime
from palette.gateway.preview_budget import release, reserve_previews
from palette.gateway.previewing import preview_steps
from palette.gateway.problems import Problem, field_error, invalid
from palette.gateway.schemas import PreviewRequest, PreviewView, StepPreviewView, TemplateView
from palette.gateway.settings import GatewaySettings
from palette.gateway.template_yaml import MEDIA_TYPE, from_yaml, to_yaml
from palette.gateway.templating import template_view

log = structlog.get_logger("palette.gateway")


@dataclass
class YamlBodyOperation(Operation):
    """The OpenAPI operation of a route whose body is a YAML document."""

    def __post_init__(self) -> None:
        self.request_body = RequestBody(
            required=True,
            description="A template as YAML (what `GET /templates/{id}/yaml` returns).",
            content={MEDIA_TYPE: OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))},
        )


def _rendered(
    spec: TemplateSpec,
    seed: dict[str, Any],
    runtime: GatewayRuntime,
    name: str = "seed",
    variables: dict[str, Any] | None = None,
) -> tuple[list[StepPreviewView], int]:
    seconds = runtime.settings.template_render_seconds
    try:
        return preview_steps(spec, seed, runtime.pricing, seconds, variables)
    except TemplateError as exc:
        if name != "seed":
            raise invalid(name, f"{exc.field}: {exc.problem}") from None
        raise invalid(exc.field, exc.problem) from None
    except UnknownModelError as exc:
        raise invalid("template_id", str(exc)) from None


def _render_records(
    spec: TemplateSpec, seeds: list[tuple[str, dict[str, Any]]], runtime: GatewayRuntime
) -> tuple[list[dict[str, Any]], list[list[StepPreviewView]], list[int]]:
    """Each record's draws, steps and worst case."""
    try:
        drawn = preview_variables(spec.variables, [s for _, s in seeds])
    except ValueError as exc:
        raise invalid("seed", str(exc)) from None
    rendered = [_rendered(spec, s, runtime, n, drawn[k]) for k, (n, s) in enumerate(seeds)]
    return drawn, [steps for steps, _ in rendered], [worst for _, worst in rendered]


def _worst_rates(seed_steps: list[list[StepPreviewView]], pricing: PricingTable) -> list[RateCosts]:
    """Each seed's record worst case at every rate (its steps' input bounds and max tokens)."""
    return [
        rate_costs([(s.model, s.input_tokens, s.max_tokens) for s in steps], pricing)
        for steps in seed_steps
    ]


def _run_rates(results: list[PreviewResult], pricing: PricingTable) -> list[RateCosts]:
    """Each record run to its end, its tokens priced at every rate."""
    return [
        rate_costs([(s.model_id, s.input_tokens, s.output_tokens) for s in r.steps], pricing)
        for r in results
        if r.error is None
    ]


def _seeds(data: PreviewRequest) -> list[tuple[str, dict[str, Any]]]:
    """Each seed of a preview with the name a problem gives it."""
    more = [(f"more_seeds[{i}]", seed) for i, seed in enumerate(data.more_seeds)]
    return [("seed", data.seed), *more]


def _check_seeds(seeds: list[tuple[str, dict[str, Any]]], requirements: list[Any]) -> None:
    """A 422 naming the first seed record that lacks fields the template needs."""
    for name, seed in seeds:
        missing = missing_fields(seed, requirements)
        if missing:
            which = "" if name == "seed" else f"{name}: "
            raise Problem(
                422,
                f"{which}the seed record lacks fields the template needs: {', '.join(missing)}",
                errors=[field_error(name, "missing field", missing=missing)],
            )


def _within_cap(settings: GatewaySettings, worst: int) -> int:
    """The preview cap in picodollars, once one record's worst case is known to fit in it."""
    cap = usd_to_picos(settings.preview_max_usd)
    if worst > cap:
        raise invalid(
            "run",
            f"one record's worst case ({usd_string(worst)} USD) is above the preview cap "
            f"({settings.preview_max_usd} USD)",
        )
    return cap


async def _run(
    runtime: GatewayRuntime,
    owner: str,
    template_id: str,
    spec: TemplateSpec,
    seeds: list[tuple[dict[str, Any], dict[str, Any]]],
    worsts: list[int],
) -> list[PreviewResult]:
    """Run the records one after another, every worst case reserved before the first runs."""
    settings = runtime.settings
    timeout = settings.preview_timeout_seconds
    start = utcnow()
    # Record k starts after at most k answers, each waited for at most ``timeout``.
    deadlines = [start + timedelta(seconds=timeout * (k + 1)) for k in range(len(seeds))]
    preview_ids = await reserve_previews(runtime, owner, template_id, worsts, deadlines)
    results: list[PreviewResult] = []
    for k, ((seed, variables), worst) in enumerate(zip(seeds, worsts, strict=True)):
        request = PreviewRecord(
            message_id=preview_ids[k],
            owner=owner,
            template=spec,
            seed=seed,
            variables=variables,
            max_cost=worst,
            deadline=min(utcnow() + timedelta(seconds=timeout), deadlines[k]),
        )
        try:
            results.append(await runtime.publisher.request(request, PreviewResult, timeout))
        except TimeoutError:
            # The records not sent never run: their reservations go back now.
            await release(runtime, owner, preview_ids[k + 1 :])
            raise Problem(
                503,
                f"no generator answered the preview within {timeout:g} s; try again shortly",
                headers={"Retry-After": "5"},
            ) from None
    return results


def _with_run(steps: list[StepPreviewView], result: PreviewResult) -> list[StepPreviewView]:
    """The rendered steps, each one the record ran with what was sent, answered and paid."""
    ran = {step.step_id: step for step in result.steps}
    merged = []
    for step in steps:
        done = ran.get(step.id)
        if done is None:
            merged.append(step)
            continue
        merged.append(
            step.model_copy(
                update={
                    "prompt": done.prompt,
                    "system": done.system,
                    "input_tokens": done.input_tokens,
                    "output": done.output,
                    "output_tokens": done.output_tokens,
                    "cost_usd": usd_string(done.cost),
                }
            )
        )
    return merged


class TemplateToolsController(Controller):
    """Preview, export and import; the template rules of ``TemplateController`` apply."""

    path = "/templates"
    tags = ["templates"]

    @post(
        "/{template_id:str}/preview",
        operation_id="previewTemplate",
        summary="Render a template against a seed record and estimate a job; with run=true, "
        "run the seed records through the model",
        status_code=HTTP_200_OK,
        responses=problems(404, 413),
    )
    async def preview(
        self,
        template_id: FromPath[str],
        data: JSONBody[PreviewRequest],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
        version: Version = None,
        run: Annotated[
            bool,
            QueryParameter(description="Run each seed's record through the model (costs money)."),
        ] = False,
    ) -> PreviewView:
        """Each step's rendered prompt, input token bound and worst-case cost, and a job estimate.

        No model is called by default. With ``run=true`` a generator runs the
        record of ``seed``, then one of each of ``more_seeds``, one after
        another (each record's worst case must fit in
        ``PALETTE_GATEWAY_PREVIEW_MAX_USD``), and the real usage and cost come
        back. Before the first record runs, the worst cases of all of them are
        reserved from the user's preview budget of the day
        (``PALETTE_GATEWAY_PREVIEW_BUDGET_USD``; 429, with nothing billed, when
        their sum does not fit). ``estimate`` scales the records run and the worst case to a
        job of ``num_records`` records (see ``palette.gateway.estimating``).
        """
        doc = await visible_template(runtime, owner, template_id, version)
        seeds = _seeds(data)
        _check_seeds(seeds, list(doc.get("schema_requirements", [])))
        spec = template_spec(doc)
        drawn, seed_steps, worsts = _render_records(spec, seeds, runtime)
        steps, worst = seed_steps[0], worsts[0]
        worst_rates = _worst_rates(seed_steps, runtime.pricing)
        view = PreviewView(
            template_id=template_id,
            version=doc["version"],
            run=run,
            steps=steps,
            worst_case_usd=usd_string(worst),
            estimate=rated_estimate(data.num_records, worsts, worst_rates),
        )
        if not run:
            return view
        _within_cap(runtime.settings, max(worsts))  # refused before any record is billed
        records = [(s, drawn[k]) for k, (_, s) in enumerate(seeds)]
        results = await _run(runtime, owner, template_id, spec, records, worsts)
        sample = SampleRun()
        for (name, _), record in zip(seeds, results, strict=True):
            sample = sample.add(name, record.cost, record.error)
        ran = _run_rates(results, runtime.pricing)
        result = results[0]
        log.info("template_previewed", template_id=template_id, cost=sample.spent, owner=owner)
        return view.model_copy(
            update={
                "steps": _with_run(steps, result),
                "cost_usd": usd_string(result.cost),
                "error": result.error,
                "estimate": rated_estimate(data.num_records, worsts, worst_rates, sample, ran),
            }
        )

    @get(
        "/{template_id:str}/yaml",
        operation_id="exportTemplateYaml",
        summary="A template version as YAML",
        media_type=MEDIA_TYPE,
        responses=problems(404),
    )
    async def export_yaml(
        self,
        template_id: FromPath[str],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
        version: Version = None,
    ) -> str:
        """The version (latest by default) as a YAML document ``POST /templates/yaml`` reads."""
        return to_yaml(await visible_template(runtime, owner, template_id, version))

    @post(
        "/yaml",
        operation_id="importTemplateYaml",
        summary="Create a template from a YAML document",
        status_code=HTTP_201_CREATED,
        operation_class=YamlBodyOperation,
        responses=problems(413),
    )
    async def import_yaml(
        self,
        request: Request[Any, Any, Any],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
    ) -> TemplateView:
        """Create version 1 of a template from YAML, validated like ``POST /templates``.

        The YAML is read with the safe loader and aliases are refused.
        """
        data = from_yaml(await request.body())
        doc = await store_new(runtime, owner, data, uuid.uuid4().hex, update=False)
        return template_view(doc, owner)
