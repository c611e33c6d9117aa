"""Structured step outputs: a step's JSON Schema, a judge's schema, and checking outputs.

Pure logic, no I/O. A step with ``output_schema`` (a JSON Schema whose top is
an object) answers JSON that the schema validates; a ``judge`` step answers
``{"score": int, "reason": str}`` with the score in its ``scale``. Later steps
read fields of such an output (``steps.facts.output.city``): ``field_problem``
says when the schema has no such field, so a template that reads one is
refused when it is written. Validation uses the ``jsonschema`` library
(Draft 2020-12).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

MAX_SCHEMA_CHARS = 20_000
"""The largest ``output_schema`` a step may carry, as compact JSON."""
TOOL_NAME = "record_output"
"""The one tool of a forced tool use call: its input is the step's output."""
JUDGE_REASON_CHARS = 2000


class OutputInvalidError(ValueError):
    """A model's output that does not parse, or that the step's schema does not validate."""


def check_schema(schema: Any) -> dict[str, Any]:
    """A step's ``output_schema`` checked: an object schema, valid, not too large.

    Raises:
        ValueError: naming what is wrong.
    """
    if not isinstance(schema, dict):
        raise ValueError("output_schema must be a JSON Schema object")
    if schema.get("type") != "object":
        raise ValueError('output_schema must describe an object at the top ("type": "object")')
    try:
        if len(canonical(schema)) > MAX_SCHEMA_CHARS:
            raise ValueError(f"output_schema is longer than {MAX_SCHEMA_CHARS} characters as JSON")
        Draft202012Validator.check_schema(schema)
    except RecursionError:
        raise ValueError("output_schema is nested too deeply") from None
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "(top)"
        problem = f"output_schema is not a valid JSON Schema at {where}: {exc.message}"
        raise ValueError(problem) from None
    return schema


def canonical(schema: Mapping[str, Any]) -> str:
    """The schema as compact JSON with sorted keys: what a request carries."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def judge_schema(scale: Sequence[int]) -> dict[str, Any]:
    """The output schema of a judge step: an integer score in ``scale`` and a reason."""
    low, high = scale
    return {
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": low, "maximum": high},
            "reason": {"type": "string", "maxLength": JUDGE_REASON_CHARS},
        },
        "required": ["score", "reason"],
        "additionalProperties": False,
    }


def judge_instructions(rubric: str, scale: Sequence[int]) -> str:
    """The system text a judge step's call carries after the step's own system text."""
    low, high = scale
    return (
        f"You are a judge. Score the text you are given from {low} (worst) to {high} "
        f"(best) by this rubric, and give a short reason.\nRubric: {rubric}"
    )


def parse_output(text: str | None, tool_input: Any, schema: Mapping[str, Any]) -> Any:
    """The value a structured call answered, validated against ``schema``.

    ``tool_input`` (a forced tool use's input) wins over ``text`` (a
    structured-output answer, JSON text).

    Raises:
        OutputInvalidError: not JSON, or not valid under the schema (the first error).
    """
    if tool_input is not None:
        value = tool_input
    else:
        try:
            value = json.loads(text or "")
        except ValueError as exc:
            raise OutputInvalidError(f"the output is not JSON: {exc}") from None
    error = next(iter(Draft202012Validator(schema).iter_errors(value)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top)"
        raise OutputInvalidError(
            f"the output does not match the schema at {where}: {error.message}"
        )
    return value


def field_problem(schema: Mapping[str, Any], path: Sequence[str]) -> str | None:
    """Why ``path`` (fields below ``output``) is not in the schema; None when it is.

    An object's field must be one of its ``properties`` (when the object lists
    any); an array is entered by an index (``tags[0]``). A part of the schema
    that does not say (no ``type``, ``anyOf``, ...) accepts anything below it,
    and so does a string or an array (a name there may be a method).
    """
    node: Mapping[str, Any] = schema
    for depth, name in enumerate(path):
        kind = node.get("type")
        if kind == "object" or (kind is None and "properties" in node):
            properties = node.get("properties") or {}
            if name in properties:
                node = properties[name] if isinstance(properties[name], Mapping) else {}
                continue
            if not properties:
                return None
            known = ", ".join(sorted(properties))
            shown = ".".join(path[: depth + 1])
            return f"field {shown!r} is not in the output_schema (its fields: {known})"
        if kind == "array" and name.isdigit():
            items = node.get("items")
            node = items if isinstance(items, Mapping) else {}
            continue
        return None  # a scalar's or a list's attribute may be a method (``.upper()``)
    return None


def probe_output(schema: Any, mark: str) -> Any:
    """A stand-in answer of ``schema`` whose every leaf is ``mark`` (an array holds one)."""
    if not isinstance(schema, Mapping):
        return mark
    properties = schema.get("properties")
    if isinstance(properties, Mapping) and properties:
        return {name: probe_output(sub, mark) for name, sub in properties.items()}
    if schema.get("type") == "array":
        return [probe_output(schema.get("items"), mark)]
    return mark
