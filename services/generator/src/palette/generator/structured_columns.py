"""Columns of structured step outputs: Arrow types from a JSON Schema, CSV's dotted columns.

Pure logic, no I/O. A step with a schema (``output_schema``, a judge's) keeps its
types in the export: in Parquet its column is a struct (objects), lists, int64
(integer), float64 (number), bool (boolean) and string as the schema says, and
JSON text where the schema does not say one type (``anyOf``, no ``type``); in
JSONL the output is the nested object itself; in CSV it is one column per leaf
field, named by its dotted path (``facts.city``, ``facts.geo.lat``), a list or
an untyped value as JSON text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pyarrow as pa

_SCALARS: dict[str, pa.DataType] = {
    "string": pa.string(),
    "integer": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
}


def _kind(schema: Mapping[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):  # ["integer", "null"]: the type beside null
        kinds = [k for k in kind if k != "null"]
        kind = kinds[0] if len(kinds) == 1 else None
    if kind is None and "properties" in schema:
        return "object"
    return kind if isinstance(kind, str) else None


def arrow_type(schema: Any) -> pa.DataType:
    """The Arrow type a value of ``schema`` is stored as (string: JSON text when untyped)."""
    if not isinstance(schema, Mapping):
        return pa.string()
    kind = _kind(schema)
    if kind == "object":
        properties = schema.get("properties") or {}
        if not properties:
            return pa.string()
        return pa.struct([pa.field(name, arrow_type(sub)) for name, sub in properties.items()])
    if kind == "array":
        return pa.list_(arrow_type(schema.get("items", {})))
    return _SCALARS.get(kind or "", pa.string())


def conform(value: Any, schema: Any) -> Any:
    """``value`` in the shape of ``arrow_type(schema)`` (None stays None; a misfit is None)."""
    if value is None:
        return None
    kind = arrow_type(schema)
    if pa.types.is_struct(kind):
        properties = schema.get("properties") or {}
        fits = isinstance(value, Mapping)
        return {n: conform(value.get(n), sub) for n, sub in properties.items()} if fits else None
    if pa.types.is_list(kind):
        items = schema.get("items", {})
        return [conform(v, items) for v in value] if isinstance(value, list) else None
    return _scalar(value, kind)


def _scalar(value: Any, kind: pa.DataType) -> Any:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    cast = {pa.int64(): int, pa.float64(): float}.get(kind)
    if cast is not None:
        return cast(value) if number else None
    if kind == pa.bool_():
        return value if isinstance(value, bool) else None
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def leaf_paths(schema: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """The paths of a schema's leaf fields (an object's fields, recursively), in order."""
    if isinstance(schema, Mapping) and _kind(schema) == "object" and schema.get("properties"):
        paths: list[tuple[str, ...]] = []
        for name, sub in schema["properties"].items():
            paths.extend(leaf_paths(sub, (*prefix, name)))
        return paths
    return [prefix]


def leaf_value(value: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` of a structured output, as a CSV field (lists as JSON text)."""
    for name in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(name)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value
