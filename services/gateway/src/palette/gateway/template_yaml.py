"""Templates as YAML: export a version, import a file as a new template (pure).

Import reads with PyYAML's safe loader only (no Python objects), refuses
aliases (a few bytes of anchors could expand to gigabytes), and validates the
result exactly like a JSON body of ``POST /templates``.
"""

from __future__ import annotations

from typing import Any

import yaml
from pydantic import ValidationError

from palette.gateway.problems import Problem, errors_from_pydantic, field_error
from palette.gateway.schemas import CreateTemplate

MEDIA_TYPE = "application/yaml"
FORMAT_MARKER = "plot_palette_template"
FORMAT_VERSION = 1


def to_yaml(doc: dict[str, Any]) -> str:
    """A template version as a YAML document that ``from_yaml`` reads back."""
    steps = []
    for step in doc["steps"]:
        item = {"id": step["id"], "model": step["model"], "prompt": step["prompt"]}
        if step.get("system") is not None:
            item["system"] = step["system"]
        item["max_tokens"] = step["max_tokens"]
        item["temperature"] = step["temperature"]
        if step.get("kind", "generate") != "generate":
            item["kind"] = step["kind"]
        for name in ("output_schema", "rubric"):
            if step.get(name) is not None:
                item[name] = step[name]
        if step.get("kind") == "judge":
            item["scale"] = list(step.get("scale") or (1, 5))
        if step.get("cache_prompt"):
            item["cache_prompt"] = True
        steps.append(item)
    body = {
        FORMAT_MARKER: FORMAT_VERSION,
        "name": doc["name"],
        "public": bool(doc.get("public", False)),
        "steps": steps,
    }
    if doc.get("variables"):
        body["variables"] = doc["variables"]
    if doc.get("keep_if"):
        body["keep_if"] = doc["keep_if"]
    header = (
        f"# Plot Palette template {doc['template_id']} version {doc['version']}\n"
        f"# Seed fields it needs: {', '.join(doc.get('schema_requirements', [])) or 'none'}\n"
    )
    return header + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100)


def _invalid(problem: str, **extra: Any) -> Problem:
    return Problem(
        422, f"invalid YAML template: {problem}", errors=[field_error("body", problem, **extra)]
    )


def from_yaml(text: bytes) -> CreateTemplate:
    """The template a YAML document describes.

    Raises:
        Problem: 422 for YAML that does not parse, uses aliases, or is not a valid template.
    """
    try:
        source = text.decode("utf-8")
        for event in yaml.parse(source, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise _invalid("YAML aliases (*name) are not accepted")
        data = yaml.safe_load(source)
    except UnicodeDecodeError:
        raise _invalid("the body is not UTF-8") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise _invalid(f"YAML syntax error: {exc.problem}", line=line) from None
    except (yaml.YAMLError, RecursionError) as exc:
        raise _invalid(f"YAML error: {type(exc).__name__}") from None
    if not isinstance(data, dict):
        raise _invalid("the document must be a mapping with name and steps")
    marker = data.pop(FORMAT_MARKER, FORMAT_VERSION)
    if marker != FORMAT_VERSION:
        raise _invalid(f"{FORMAT_MARKER} must be {FORMAT_VERSION}")
    try:
        return CreateTemplate.model_validate(data)
    except ValidationError as exc:
        errors = errors_from_pydantic(exc)
        summary = "; ".join(f"{e['field']}: {e['problem']}" for e in errors[:5])
        raise Problem(422, f"invalid template: {summary}", errors=errors) from None
