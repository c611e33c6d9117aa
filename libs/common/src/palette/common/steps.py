"""A template step: one model call, free text or structured (``output_schema``, ``judge``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from palette.common.output_schema import canonical, check_schema, judge_instructions, judge_schema

STEP_ID = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
MAX_PROMPT_CHARS = 100_000
MAX_RUBRIC_CHARS = 10_000
DEFAULT_SCALE = (1, 5)


def without_unused(data: dict[str, Any]) -> dict[str, Any]:
    """A step's serialised fields without those it leaves unused (structured, cache_prompt)."""
    if data.get("cache_prompt") is False:
        data.pop("cache_prompt")
    if data.get("kind") == "generate":
        unused = ["kind", "rubric", "scale"]
        if data.get("output_schema") is None:
            unused.append("output_schema")
        for name in unused:
            data.pop(name, None)
    return data


class Step(BaseModel):
    """One model call of a template.

    ``kind="generate"`` answers text, or JSON validated by ``output_schema``
    when the step has one. ``kind="judge"`` scores by ``rubric`` on ``scale``:
    its output is ``{"score": int, "reason": str}`` (``output_schema`` is then
    generated, never given).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Annotated[str, Field(pattern=STEP_ID)]
    model: Annotated[str, Field(min_length=1, max_length=200)]
    prompt: Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS)]
    system: Annotated[str | None, Field(max_length=MAX_PROMPT_CHARS)] = None
    max_tokens: Annotated[int, Field(ge=1, le=64_000)] = 512
    temperature: Annotated[float, Field(ge=0.0, le=1.0)] = 0.7
    kind: Literal["generate", "judge"] = "generate"
    output_schema: dict[str, Any] | None = None
    rubric: Annotated[str | None, Field(min_length=1, max_length=MAX_RUBRIC_CHARS)] = None
    scale: tuple[int, int] = DEFAULT_SCALE
    cache_prompt: bool = False
    """A Converse cache point after the system prompt and the prompt's static prefix."""

    @field_validator("output_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_schema(value)

    @model_validator(mode="after")
    def _judge_fields(self) -> Step:
        if self.kind == "judge":
            if self.rubric is None:
                raise ValueError("a judge step needs a rubric")
            if self.output_schema is not None:
                raise ValueError("a judge step's output_schema is generated: do not give one")
            if not self.scale[0] < self.scale[1]:
                raise ValueError("scale must be [low, high] with low < high")
        elif self.rubric is not None or self.scale != DEFAULT_SCALE:
            raise ValueError("rubric and scale are for kind: judge steps only")
        return self

    @model_serializer(mode="wrap")
    def _without_unused(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """A text step serialises as before these fields were: without them."""
        data: dict[str, Any] = handler(self)
        if not self.cache_prompt:
            data.pop("cache_prompt", None)
        if self.kind == "generate":
            for name in (
                "kind",
                "rubric",
                "scale",
                *(() if self.output_schema else ("output_schema",)),
            ):
                data.pop(name, None)
        return data

    @property
    def answer_schema(self) -> dict[str, Any] | None:
        """The schema the step's output must match (a judge's generated one); None: text."""
        if self.kind == "judge":
            return judge_schema(self.scale)
        return self.output_schema

    def call_system(self, rendered: str | None) -> str | None:
        """The system text the call carries: the rendered one, then a judge's instructions."""
        if self.kind != "judge" or self.rubric is None:
            return rendered
        instructions = judge_instructions(self.rubric, self.scale)
        return f"{rendered}\n\n{instructions}" if rendered else instructions

    def bound_system(self, system: str | None) -> str | None:
        """The system text an input bound counts: the call's, then the schema's JSON text."""
        schema = self.answer_schema
        if schema is None:
            return system
        return f"{system}\n{canonical(schema)}" if system else canonical(schema)
