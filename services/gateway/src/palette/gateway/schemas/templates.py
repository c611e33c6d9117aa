"""Bodies of ``/templates``: templates, versions, forks and previews."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from palette.common.messages import MAX_RECORDS
from palette.common.record_filters import KeepIfExpression
from palette.common.samplers import MAX_VARIABLES, VARIABLE_NAME, Sampler
from palette.common.steps import DEFAULT_SCALE, MAX_RUBRIC_CHARS, without_unused
from palette.common.templates import MAX_PROMPT_CHARS, MAX_STEPS, STEP_ID
from palette.gateway.schemas.base import Cursor, Name, Reply, Request

OUTPUT_SCHEMA_EXAMPLE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "population": {"type": "integer"},
        "landmarks": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["city", "population"],
}
JUDGE_EXAMPLE: dict[str, Any] = {
    "id": "grade",
    "kind": "judge",
    "model": "amazon.nova-lite-v1:0",
    "prompt": "Tip: {{ steps.answer.output }}",
    "rubric": "Is the tip specific to the city and useful?",
    "scale": [1, 5],
}


class StepIn(Request):
    """One model call of a template."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "facts",
                    "model": "anthropic.claude-haiku-4-5-20251001-v1:0",
                    "prompt": "Give facts about a city in {{ country }}.",
                    "output_schema": OUTPUT_SCHEMA_EXAMPLE,
                },
                JUDGE_EXAMPLE,
            ]
        }
    )

    id: Annotated[str, Field(pattern=STEP_ID, description="Unique step id, e.g. `question`.")]
    model: Annotated[str, Field(min_length=1, max_length=200, description="A priced model id.")]
    prompt: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_PROMPT_CHARS,
            description="Jinja2 prompt: seed fields by name, earlier steps as steps.<id>.output.",
        ),
    ]
    system: Annotated[str | None, Field(max_length=MAX_PROMPT_CHARS)] = None
    max_tokens: Annotated[int, Field(ge=1, le=64_000)] = 512
    temperature: Annotated[float, Field(ge=0.0, le=1.0)] = 0.7
    cache_prompt: Annotated[
        bool,
        Field(
            description="Prompt caching: a Converse cache point after the system prompt and "
            "after the prompt's static prefix (its text before the first `{{`/`{%`), so calls "
            "that repeat them read them from the model's cache, billed at the cache-read price "
            "(a first call writes them, at the cache-write price, which the budget reserves). "
            "Only for models with cache prices in the pricing table.",
            examples=[True],
        ),
    ] = False
    kind: Literal["generate", "judge"] = Field(
        "generate",
        description="`generate`: the step answers text, or JSON matching `output_schema`. "
        '`judge`: it scores by `rubric` on `scale` and answers `{"score": int, '
        '"reason": str}` (read as `steps.<id>.output.score`).',
    )
    output_schema: dict[str, Any] | None = Field(
        None,
        description="A JSON Schema (an object at the top) the step's answer must match: "
        "asked through Bedrock's structured output or forced tool use, validated, asked "
        "again when invalid (each call billed). Later steps read its fields as "
        "`steps.<id>.output.<field>`; reading a field it lacks is refused (422).",
        examples=[OUTPUT_SCHEMA_EXAMPLE],
    )
    rubric: Annotated[str | None, Field(min_length=1, max_length=MAX_RUBRIC_CHARS)] = Field(
        None,
        description="A judge step's scoring rubric.",
        examples=["Is the answer correct and complete for the question?"],
    )
    scale: Annotated[list[int], Field(min_length=2, max_length=2)] = Field(
        default_factory=lambda: list(DEFAULT_SCALE),
        description="A judge step's lowest and highest score, `[low, high]`.",
        examples=[[1, 5]],
    )

    @model_serializer(mode="wrap")
    def _without_unused(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return without_unused(handler(self))


VARIABLES_DESCRIPTION = (
    "Samplers drawn per record, read in prompts as `{{ vars.NAME }}`; the same record "
    "always draws the same (from the job id and record index). Each is one of "
    '`{"type": "category", "values": [...], "weights": [...]}` (weights optional), '
    '`{"type": "int", "min": 1, "max": 10}`, `{"type": "float", "min": 0, "max": 1}`, '
    '`{"type": "choice_from_seed", "field": "topic"}` (one of the seed file\'s distinct '
    "values of the field)."
)
VARIABLES_EXAMPLE = {
    "tone": {"type": "category", "values": ["formal", "casual"], "weights": [3, 1]},
    "age": {"type": "int", "min": 18, "max": 80},
}


class CreateTemplate(Request):
    """Body of ``POST /templates`` and ``PUT /templates/{id}`` (a new version)."""

    name: Name
    steps: Annotated[list[StepIn], Field(min_length=1, max_length=MAX_STEPS)]
    variables: Annotated[
        dict[Annotated[str, Field(pattern=VARIABLE_NAME)], Sampler],
        Field(
            default_factory=dict,
            max_length=MAX_VARIABLES,
            description=VARIABLES_DESCRIPTION,
            examples=[VARIABLES_EXAMPLE],
        ),
    ]
    keep_if: KeepIfExpression | None = Field(
        None,
        description="Records it is false for are rejected (left out of the dataset, in the "
        "rejected file), for every job of the template; a job's own `keep_if` applies as well "
        "(a record is kept only when both are true). An expression over "
        "`steps.<id>.output` and `vars.<name>`.",
        examples=["steps.answer.output | length > 40"],
    )
    public: bool = False


class StepOut(Reply):
    """A stored template step."""

    id: str
    model: str
    prompt: str
    system: str | None = None
    max_tokens: int
    temperature: float
    cache_prompt: bool = False
    kind: Literal["generate", "judge"] = "generate"
    output_schema: dict[str, Any] | None = None
    rubric: str | None = None
    scale: list[int] = Field(default_factory=lambda: list(DEFAULT_SCALE))


class TemplateView(Reply):
    """A template version."""

    id: str
    version: int
    name: str
    public: bool
    owned: bool = Field(True, description="Whether the caller owns the template.")
    steps: list[StepOut]
    variables: dict[str, Sampler] = Field(
        default_factory=dict, description="The template's samplers (see `CreateTemplate`)."
    )
    keep_if: str | None = Field(
        None, description="The template's own filter (see `CreateTemplate`)."
    )
    schema_requirements: list[str] = Field(
        description="Seed fields (dotted paths) every seed record must have."
    )
    forked_from: str | None = Field(
        None, description="`<template id>:<version>` this template was forked from."
    )
    created_at: datetime


class TemplatePage(Reply):
    """One page of ``GET /templates``: the latest version of each template the caller sees."""

    items: list[TemplateView]
    next_cursor: Cursor = None


class TemplateVersionView(Reply):
    """One version in ``GET /templates/{id}/versions``."""

    version: int
    name: str
    public: bool
    schema_requirements: list[str]
    created_at: datetime


class TemplateVersions(Reply):
    """Every version of a template the caller may see, newest first."""

    id: str
    versions: list[TemplateVersionView]


class ForkTemplate(Request):
    """Body of ``POST /templates/{id}/fork`` (optional)."""

    name: Name | None = Field(None, description="Name of the copy; the original's when omitted.")


MORE_SEEDS = 9
"""Seed records a preview takes beside ``seed`` (ten records at most)."""


class PreviewRequest(Request):
    """Body of ``POST /templates/{id}/preview``."""

    seed: dict[str, Any] = Field(description="One seed record, as a job would draw it.")
    more_seeds: list[dict[str, Any]] = Field(
        default_factory=list,
        max_length=MORE_SEEDS,
        description="More seed records for the job estimate. With `run` each is run through "
        "the model too (one after another, each billed) and the estimate's mean and spread "
        "come from every record run; without `run` they count toward its worst case. The "
        "steps shown are those of `seed`.",
    )
    num_records: int = Field(
        1000, ge=1, le=MAX_RECORDS, description="Records of the job the estimate is for."
    )


class StepPreviewView(Reply):
    """One step of a preview."""

    id: str
    model: str
    prompt: str = Field(
        description="The rendered prompt; without `run`, an earlier step's output appears "
        "as a placeholder `<output of step ID>`."
    )
    system: str | None = None
    input_tokens: int = Field(
        description="Input tokens: an upper bound of the rendered prompt (byte-level), "
        "or with `run` the count the model reported."
    )
    max_tokens: int
    worst_case_usd: str = Field(
        description="The most this call can cost: input bound (with earlier outputs at "
        "their maximum) at the input price plus `max_tokens` at the output price."
    )
    output: str | None = Field(None, description="With `run`: the model's answer.")
    output_tokens: int | None = Field(None, description="With `run`: output tokens reported.")
    cost_usd: str | None = Field(None, description="With `run`: the exact cost of the call.")


class RateEstimateView(Reply):
    """The estimate of the same job at one way of paying (a service tier, or batch)."""

    worst_case_usd: str = Field(description="`worst_case_usd` at this rate's prices.")
    mean_usd: str | None = Field(
        None, description="`mean_usd` at this rate's prices (the same tokens); null when none ran."
    )


class JobEstimateView(Reply):
    """What a job of ``num_records`` records may cost, from the records previewed.

    The spread is the cheapest and the dearest record run, times
    ``num_records``: exact, unlike a standard deviation, and all that a handful
    of records can honestly say.
    """

    num_records: int
    records_run: int = Field(
        description="Records run through the model to their end: the mean and the spread "
        "come from them (0 without `run`)."
    )
    mean_usd: str | None = Field(
        None,
        description="Mean cost of the records run times `num_records`, rounded up to a "
        "picodollar; null when none ran.",
    )
    low_usd: str | None = Field(
        None, description="Low end of the spread: the cheapest record run times `num_records`."
    )
    high_usd: str | None = Field(
        None, description="High end of the spread: the dearest record run times `num_records`."
    )
    worst_case_usd: str = Field(
        description="The largest worst case of one record among the seeds previewed, times "
        "`num_records`: the most the job can cost if none of its seeds is larger and each "
        "earlier output takes at most 8 bytes per token."
    )
    spent_usd: str = Field(description="What running the records cost in all (0 without `run`).")
    errors: list[str] = Field(
        default_factory=list,
        description="Records run that stopped early, left out of the mean and the spread, "
        "with why (`seed` or `more_seeds[i]`).",
    )
    by_rate: dict[str, RateEstimateView | None] = Field(
        default_factory=dict,
        description="The same estimate at each way of paying, side by side: the service "
        "tiers `default` (the figures above), `flex`, `priority`, and `batch` (a job's "
        "`service_tier` and `mode`); null where a model of the template has no price there.",
    )


class PreviewView(Reply):
    """Answer of ``POST /templates/{id}/preview``."""

    template_id: str
    version: int
    run: bool
    steps: list[StepPreviewView]
    worst_case_usd: str = Field(description="Worst-case cost of one record (sum of the steps).")
    cost_usd: str | None = Field(None, description="With `run`: what the record really cost.")
    error: str | None = Field(None, description="With `run`: why the record stopped early.")
    estimate: JobEstimateView = Field(
        description="A job of `num_records` records: mean, spread and worst case."
    )
