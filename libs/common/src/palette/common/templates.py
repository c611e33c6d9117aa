"""Prompt templates: a list of steps rendered with Jinja2's sandbox.

A step's prompt sees the seed record's fields as top-level variables and the
outputs of earlier steps as ``steps.<id>.output``. Rendering runs in an
immutable sandbox with strict undefined variables, limits on the size of
everything a template builds (``palette.common.sandbox``), and a wall-clock
limit per render. Dunder attributes (``__class__``, ``__globals__``) are refused
when a template is parsed. A render given a ``draws`` key (a record's) makes the
same picks of the ``random`` filter each time.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Annotated, Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError, nodes
from jinja2.exceptions import SecurityError
from pydantic import BaseModel, ConfigDict, Field, model_validator

from palette.common.draws import seeded_draws
from palette.common.output_schema import field_problem
from palette.common.samplers import MAX_VARIABLES, VARIABLE_NAME, Sampler, seed_fields
from palette.common.sandbox import (
    MAX_RENDER_CHARS,
    LimitedSandbox,
    RenderLimitError,
    RenderTimeoutError,
    TemplateError,
    build_budget,
)
from palette.common.steps import MAX_PROMPT_CHARS, STEP_ID, Step
from palette.common.time_limit import Expired, time_limit

__all__ = [
    "MAX_PROMPT_CHARS",
    "MAX_RENDER_CHARS",
    "STEP_ID",
    "RenderLimitError",
    "RenderTimeoutError",
    "SandboxError",
    "Step",
    "TemplateError",
    "TemplateSpec",
    "analyse",
    "references",
    "render",
    "step_context",
]

MAX_STEPS = 10
DEFAULT_RENDER_SECONDS = 1.0
MAX_TEMPLATE_DEPTH = 40
VARS = "vars"
"""The name under which a step reads the record's variables."""
MAX_KEEP_IF_CHARS = 2_000


class TemplateSpec(BaseModel):
    """An ordered list of 1..10 steps with unique ids, and the variables drawn per record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: Annotated[tuple[Step, ...], Field(min_length=1, max_length=MAX_STEPS)]
    variables: Annotated[
        dict[Annotated[str, Field(pattern=VARIABLE_NAME)], Sampler],
        Field(
            default_factory=dict,
            max_length=MAX_VARIABLES,
            description="Samplers drawn per record (``palette.common.samplers``), read as "
            "``{{ vars.NAME }}``.",
        ),
    ]
    keep_if: Annotated[str | None, Field(min_length=1, max_length=MAX_KEEP_IF_CHARS)] = None
    """Records it is false for are rejected, whatever the job's ``keep_if`` (both apply)."""

    @model_validator(mode="after")
    def _unique_ids(self) -> TemplateSpec:
        seen: set[str] = set()
        for step in self.steps:
            if step.id in seen:
                raise ValueError(f"duplicate step id {step.id!r}")
            seen.add(step.id)
        return self

    @property
    def models(self) -> list[str]:
        """Model ids the template calls, in step order, without repeats."""
        return list(dict.fromkeys(step.model for step in self.steps))


class SandboxError(TemplateError):
    """A template reached for something the sandbox never allows (private attributes)."""


_ENV = LimitedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
_MANGLED = re.compile(r"^_[A-Za-z0-9]+__")


def _private(name: object) -> bool:
    """Dunder and name-mangled names: ``__class__``, ``_TemplateReference__context``."""
    return isinstance(name, str) and (name.startswith("__") or bool(_MANGLED.match(name)))


def _private_access(ast: nodes.Template) -> list[str]:
    """The dunder attributes a template reaches for (``x.__class__``, ``x['__init__']``)."""
    found: set[str] = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        if isinstance(node, nodes.Getattr):
            found.add(node.attr)
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            found.add(node.arg.value)
        elif isinstance(node, nodes.Filter) and node.name == "attr" and node.args:
            first = node.args[0]
            found.update([first.value] if isinstance(first, nodes.Const) else [])
    return sorted(str(name) for name in found if _private(name))


def _depth(node: nodes.Node, limit: int) -> int:
    stack: list[tuple[nodes.Node, int]] = [(node, 1)]
    deepest = 0
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        stack.extend((child, level + 1) for child in current.iter_child_nodes())
    return deepest


def _parse(source: str, field: str) -> nodes.Template:
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(
            field, f"template syntax error on line {exc.lineno}: {exc.message}"
        ) from exc
    except RecursionError as exc:
        raise TemplateError(field, "expression nesting is too deep") from exc
    if _depth(ast, MAX_TEMPLATE_DEPTH) > MAX_TEMPLATE_DEPTH:
        raise TemplateError(field, f"expression nesting deeper than {MAX_TEMPLATE_DEPTH}")
    private = _private_access(ast)
    if private:
        names = ", ".join(repr(name) for name in private)
        raise SandboxError(
            field, f"not allowed in the sandbox: private (dunder) attributes {names}"
        )
    return ast


def _dotted(node: nodes.Expr) -> list[str] | None:
    """``a.b['c']`` as ``['a', 'b', 'c']``; None when not a plain path."""
    parts: list[str] = []
    while True:
        if isinstance(node, nodes.Getattr):
            parts.append(node.attr)
            node = node.node
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            parts.append(str(node.arg.value))
            node = node.node
        elif isinstance(node, nodes.Name):
            parts.append(node.name)
            return parts[::-1]
        else:
            return None


def _references(ast: nodes.Template) -> list[list[str]]:
    """Longest dotted paths of every name the template loads from outside."""
    from jinja2 import meta

    free = meta.find_undeclared_variables(ast) - set(_ENV.globals)
    found: list[list[str]] = []
    stack: list[nodes.Node] = [ast]
    while stack:
        node = stack.pop()
        if isinstance(node, nodes.Getattr | nodes.Getitem):
            path = _dotted(node)
            if path is not None:
                if path[0] in free:
                    found.append(path)
                continue
        elif isinstance(node, nodes.Name):
            if node.ctx == "load" and node.name in free:
                found.append([node.name])
            continue
        stack.extend(node.iter_child_nodes())
    return found


def references(source: str, field: str) -> list[list[str]]:
    """The dotted paths a template (or ``{{ expression }}``) reads from outside; checked."""
    return _references(_parse(source, field))


def compile_expression(source: str, field: str) -> Any:
    """A sandboxed expression (a job's ``keep_if``), checked like a template's ``{{ }}``."""
    _parse("{{ (" + source + ") }}", field)
    return _ENV.compile_expression(source)


def analyse(template: TemplateSpec) -> list[str]:
    """Check every step and return the seed fields it needs as dotted paths.

    Raises TemplateError naming the step field for a syntax error, a reference
    to a step that is not earlier or to a variable the template does not
    declare, or nesting that is too deep. The seed fields the variables sample
    are requirements too.
    """
    requirements: set[str] = set(seed_fields(template.variables))
    earlier: dict[str, Step] = {}
    for index, step in enumerate(template.steps):
        for name in ("prompt", "system"):
            source = getattr(step, name)
            if source is None:
                continue
            field = f"steps[{index}].{name}"
            for path in references(source, field):
                if path[0] == "steps":
                    if len(path) < 3 or path[2] != "output":
                        raise TemplateError(field, "use steps.<id>.output to refer to a step")
                    if path[1] not in earlier:
                        raise TemplateError(
                            field, f"steps.{path[1]}.output is not the output of an earlier step"
                        )
                    _check_output_field(field, path, earlier[path[1]])
                elif path[0] == VARS:
                    _check_variable(field, path, template.variables)
                else:
                    requirements.add(".".join(path))
        earlier[step.id] = step
    # A shorter path that is a prefix of a longer one adds nothing.
    return sorted(r for r in requirements if not any(o.startswith(r + ".") for o in requirements))


def _check_output_field(field: str, path: list[str], step: Step) -> None:
    """``steps.X.output.a.b`` must name a field of step X's ``output_schema``."""
    schema = step.answer_schema
    if schema is not None and len(path) > 3:
        problem = field_problem(schema, path[3:])
        if problem is not None:
            raise TemplateError(field, f"steps.{step.id}.output: {problem}")


def _check_variable(field: str, path: list[str], variables: Mapping[str, Any]) -> None:
    """``vars.NAME`` must name a declared variable (a draw is a value: nothing below it)."""
    if len(path) < 2:
        raise TemplateError(field, "use vars.<name> to read a template variable")
    if path[1] not in variables:
        declared = ", ".join(sorted(variables)) or "none"
        raise TemplateError(
            field, f"vars.{path[1]} is not a variable of the template (declared: {declared})"
        )


_CHANCE_FILTERS = frozenset({"random"})
"""Filters whose result differs from one render to the next (unless their draws are keyed)."""


@functools.lru_cache(maxsize=256)
def renders_the_same(source: str) -> bool:
    """Whether two renders of ``source`` with the same variables give the same text.

    False when the template draws by chance (the ``random`` filter) or reads
    the record's variables (``vars``); then each record renders its own.
    """
    ast = _parse(source, "template")
    for node in ast.find_all(nodes.Filter):
        if node.name in _CHANCE_FILTERS:
            return False
    return not any(node.name == VARS for node in ast.find_all(nodes.Name))


_COMPILED: dict[str, Any] = {}


def _compiled(source: str, field: str) -> Any:
    template = _COMPILED.get(source)
    if template is None:
        _parse(source, field)
        template = _ENV.from_string(source)
        if len(_COMPILED) > 256:
            _COMPILED.clear()
        _COMPILED[source] = template
    return template


def render(
    source: str,
    context: Mapping[str, Any],
    *,
    field: str = "prompt",
    seconds: float = DEFAULT_RENDER_SECONDS,
    draws: str | None = None,
    cpu: bool = False,
) -> str:
    """Render one prompt in the sandbox within the time and size limits.

    ``draws``: the key the ``random`` filter's picks are seeded with (with the
    field), so a render with the same key picks the same; None picks anew.
    ``cpu``: ``seconds`` is of the process's CPU time, not wall-clock time.
    """
    template = _compiled(source, field)
    limit = time_limit(seconds, cpu=cpu)
    try:
        with build_budget(), seeded_draws(_draws_key(draws, field)), limit:
            text = template.render(context)
    except Expired:
        kind = " of CPU time" if cpu else ""
        problem = f"render took longer than {seconds:.3g}s{kind}"
        raise RenderTimeoutError(field, problem) from None
    except RenderLimitError as exc:
        raise RenderLimitError(field, exc.problem) from None
    except UndefinedError as exc:
        raise TemplateError(field, f"undefined variable: {exc.message}") from exc
    except SecurityError as exc:
        raise SandboxError(field, f"not allowed in the sandbox: {exc}") from exc
    except (OverflowError, MemoryError, RecursionError) as exc:
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise RenderLimitError(field, f"render exceeded a limit: {reason}") from exc
    except Exception as exc:  # the template's own runtime error
        raise TemplateError(field, f"render failed: {type(exc).__name__}: {exc}") from exc
    if len(text) > MAX_RENDER_CHARS:
        raise RenderLimitError(field, f"rendered text longer than {MAX_RENDER_CHARS} characters")
    return str(text)


def _draws_key(draws: str | None, field: str) -> str | None:
    return None if draws is None else f"{draws}/{field}"


def step_context(
    seed: Mapping[str, Any],
    outputs: Mapping[str, Any],
    variables: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The variables a step sees: the seed's fields, earlier outputs and the record's draws.

    ``steps`` and ``vars`` are the template's, whatever the seed has under those names.
    """
    context = dict(seed)
    context["steps"] = {step_id: {"output": text} for step_id, text in outputs.items()}
    context[VARS] = dict(variables or {})
    return context
