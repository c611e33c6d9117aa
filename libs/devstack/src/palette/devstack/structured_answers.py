"""The emulator's structured answers: Converse structured output and forced tool use.

Pure logic, no I/O. A request with ``outputConfig.textFormat`` (type
``json_schema``, the schema as JSON text) is answered with JSON text; one with
``toolConfig`` and a ``toolChoice`` that forces a tool (``tool`` by name, or
``any``) with a ``toolUse`` block whose input is the JSON. The value is made
from the schema, type by type, with a generator seeded by the request's digest:
the same request gets the same value, and an integer with bounds (a judge's
score) is spread over its range across requests. An answer drawn invalid
(``invalid_output_rate``) misses its schema: truncated JSON text, or a tool
input without a required field (or of the wrong type). The schema counts as
input tokens (one more block); the answer's tokens as output, capped at
``maxTokens`` (a capped JSON text is cut short, so invalid, as a real model's).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import Counter
from dataclasses import dataclass, replace
from typing import Any, NoReturn

from palette.common.structured_support import (
    NoStructuredOutputError,
    StructuredSupport,
    load_support,
)
from palette.devstack.converse import (
    MESSAGE_OVERHEAD_TOKENS,
    VOCABULARY,
    Completion,
    ConverseCall,
    ConverseRequestError,
    complete,
    count_tokens,
    input_tokens,
    max_tokens_of,
    request_seed,
)
from palette.devstack.faults import FaultInjector

MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class StructuredAsk:
    """What a request asks for: the schema, and how (``json_schema`` or ``tool``)."""

    mode: str
    schema: dict[str, Any]
    tool_name: str = ""
    schema_text: str = ""

    @property
    def input_tokens(self) -> int:
        """Tokens the schema (and the tool's name and description) adds to the input."""
        return MESSAGE_OVERHEAD_TOKENS + count_tokens(self.schema_text)


def _fail(message: str) -> NoReturn:
    raise ConverseRequestError(message)


def parse_structured(body: dict[str, Any]) -> StructuredAsk | None:
    """The structured output a request asks for (None: free text).

    Raises:
        ConverseRequestError: ``outputConfig`` or ``toolConfig`` is not in Converse's shape.
    """
    output = (body.get("outputConfig") or {}).get("textFormat")
    if output is not None:
        if not isinstance(output, dict) or output.get("type") != "json_schema":
            _fail("outputConfig.textFormat.type must be json_schema.")
        text = ((output.get("structure") or {}).get("jsonSchema") or {}).get("schema")
        if not isinstance(text, str):
            _fail("outputConfig.textFormat.structure.jsonSchema.schema must be a string.")
        try:
            schema = json.loads(text)
        except ValueError:
            _fail("outputConfig.textFormat.structure.jsonSchema.schema is not valid JSON.")
        if not isinstance(schema, dict):
            _fail("The JSON schema must be an object.")
        return StructuredAsk("json_schema", schema, schema_text=text)
    tools = body.get("toolConfig")
    if tools is None:
        return None
    return _forced_tool(tools)


def _forced_tool(config: Any) -> StructuredAsk | None:
    specs = config.get("tools") if isinstance(config, dict) else None
    if not isinstance(specs, list) or not specs:
        _fail("toolConfig.tools must not be empty.")
    by_name: dict[str, dict[str, Any]] = {}
    for tool in specs:
        spec = tool.get("toolSpec") if isinstance(tool, dict) else None
        schema = ((spec or {}).get("inputSchema") or {}).get("json")
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            _fail("toolConfig.tools.toolSpec.name is required.")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            _fail("The top level schema type of a tool's inputSchema must be object.")
        by_name[spec["name"]] = spec
    choice = config.get("toolChoice") or {"auto": {}}
    if "tool" in choice:
        name = (choice.get("tool") or {}).get("name")
        if name not in by_name:
            _fail(f"toolChoice names a tool that is not in toolConfig.tools: {name!r}.")
    elif "any" in choice and len(by_name) == 1:
        name = next(iter(by_name))
    else:
        return None  # the model may answer in text: the emulator does
    spec = by_name[name]
    text = json.dumps(
        [spec["name"], spec.get("description", ""), spec["inputSchema"]["json"]], sort_keys=True
    )
    return StructuredAsk("tool", spec["inputSchema"]["json"], spec["name"], text)


def ask_of(
    model_id: str, body: dict[str, Any], support: StructuredSupport | None = None
) -> StructuredAsk | None:
    """What structured answer a request asks for; refused when its model cannot give it.

    ``support``: how each model answers a schema (default: the shipped table).

    Raises:
        ConverseRequestError: a malformed ask, or one the model does not support.
    """
    ask = parse_structured(body)
    if ask is None:
        return None
    try:
        mode: str | None = (support or load_support(None)).entry(model_id).mode
    except NoStructuredOutputError:
        mode = None
    if mode is None or (ask.mode == "json_schema" and mode != "json_schema"):
        kind = "structured output" if ask.mode == "json_schema" else "tool use"
        _fail(f"This model doesn't support {kind}.")
    return ask


def instance(schema: Any, rng: random.Random, depth: int = 0, root: Any = None) -> Any:
    """A value of the schema's type, drawn from ``rng`` (a local ``$ref`` read in ``root``)."""
    root = schema if root is None else root
    if isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and depth < MAX_DEPTH:
        return instance(_resolve(root, schema["$ref"]), rng, depth + 1, root)
    if not isinstance(schema, dict):
        return _words(rng, 3)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return rng.choice(schema["enum"])
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return instance(schema[key][0], rng, depth + 1, root)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    return _BY_TYPE.get(kind, _string)(schema, rng, depth, root)


def _resolve(root: Any, ref: str) -> Any:
    """The part of ``root`` a local ``$ref`` (``#/$defs/place``) points at; {} if none."""
    node = root
    for part in ref.removeprefix("#").strip("/").split("/") if ref.startswith("#") else ["?"]:
        if not part:
            continue
        key = part.replace("~1", "/").replace("~0", "~")
        node = node.get(key) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else {}


def _object(schema: dict[str, Any], rng: random.Random, depth: int, root: Any) -> Any:
    properties = schema.get("properties") or {} if depth < MAX_DEPTH else {}
    return {name: instance(sub, rng, depth + 1, root) for name, sub in properties.items()}


def _array(schema: dict[str, Any], rng: random.Random, depth: int, root: Any) -> Any:
    low = int(schema.get("minItems", 1))
    high = max(low, int(schema.get("maxItems", low + 2)))
    count = rng.randint(low, high) if depth < MAX_DEPTH else 0
    return [instance(schema.get("items", {}), rng, depth + 1, root) for _ in range(count)]


def _integer(schema: dict[str, Any], rng: random.Random, depth: int, root: Any) -> Any:
    low = int(schema.get("minimum", 0))
    return rng.randint(low, int(schema.get("maximum", low + 100)))


def _number(schema: dict[str, Any], rng: random.Random, depth: int, root: Any) -> Any:
    low = float(schema.get("minimum", 0.0))
    return round(rng.uniform(low, float(schema.get("maximum", low + 100.0))), 3)


def _string(schema: dict[str, Any], rng: random.Random, depth: int = 0, root: Any = None) -> Any:
    low = int(schema.get("minLength", 1))
    high = int(schema.get("maxLength", max(low, 60)))
    text = _words(rng, rng.randint(2, 8))
    while len(text) < low:
        text += " " + _words(rng, 4)
    return text[:high] if len(text) > high else text


_BY_TYPE: dict[str, Any] = {
    "object": _object,
    "array": _array,
    "integer": _integer,
    "number": _number,
    "boolean": lambda _s, rng, _d, _root: rng.random() < 0.5,
    "null": lambda _s, _r, _d, _root: None,
    "string": _string,
}


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(VOCABULARY) for _ in range(count))


def spoil(value: dict[str, Any], schema: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A tool input that misses the schema: a required field dropped, else a wrong type."""
    required = [name for name in schema.get("required") or [] if name in value]
    spoiled = dict(value)
    if required:
        del spoiled[rng.choice(required)]
        return spoiled
    properties = schema.get("properties") or {}
    name = rng.choice(sorted(properties)) if properties else "unexpected"
    kind = (properties.get(name) or {}).get("type")
    spoiled[name] = [] if kind != "array" else "not an array"
    return spoiled


@dataclass(frozen=True, slots=True)
class StructuredCompletion:
    """A structured answer and its usage (the shape of ``converse.Completion``)."""

    text: str
    tool: tuple[str, str, Any] | None
    """``(toolUseId, name, input)`` of a forced tool use answer."""
    input_tokens: int
    output_tokens: int
    stop_reason: str
    invalid: bool = False
    """Drawn to miss its schema (``invalid_output_rate``)."""
    cache_read: int = 0
    cache_write: int = 0
    service_tier: str = "default"

    def body(self, seconds: float) -> dict[str, Any]:
        """The Converse response body, ``seconds`` after the request arrived."""
        text = Completion(
            self.text,
            self.input_tokens,
            self.output_tokens,
            self.stop_reason,
            self.cache_read,
            self.cache_write,
            self.service_tier,
        )
        body = text.body(seconds)
        if self.tool is not None:
            tool_id, name, value = self.tool
            block = {"toolUse": {"toolUseId": tool_id, "name": name, "input": value}}
            body["output"]["message"]["content"] = [block]
        return body


def answer(
    ask: StructuredAsk, seed: int, input_tokens: int, max_tokens: int, invalid: bool
) -> StructuredCompletion:
    """The structured answer to a request whose digest is ``seed`` (with the schema's)."""
    seed ^= int.from_bytes(hashlib.blake2b(ask.schema_text.encode(), digest_size=8).digest())
    input_tokens += ask.input_tokens
    rng = random.Random(seed)  # noqa: S311 - a test double's draw, not a secret
    value = instance(ask.schema, rng)
    if ask.mode == "tool":
        value = spoil(value, ask.schema, rng) if invalid else value
        text = json.dumps(value, ensure_ascii=False)
        tokens = min(max(1, count_tokens(text)), max_tokens)
        tool = (f"tooluse_{seed:016x}", ask.tool_name, value)
        return StructuredCompletion("", tool, input_tokens, tokens, "tool_use", invalid)
    text = json.dumps(value, ensure_ascii=False)
    if invalid:
        text = text[: max(1, len(text) // 2)]
    tokens = max(1, count_tokens(text))
    stop = "end_turn"
    if tokens > max_tokens:  # cut short at the cap: no longer valid JSON
        text, tokens, stop = text[: max_tokens * 4 // 2], max_tokens, "max_tokens"
    return StructuredCompletion(text, None, input_tokens, tokens, stop, invalid)


def respond(
    model_id: str,
    call: ConverseCall,
    ask: StructuredAsk | None,
    faults: FaultInjector,
    stats: Counter[str],
) -> Completion | StructuredCompletion:
    """The emulator's answer to a call: free text (no ``ask``), else structured.

    A structured answer is drawn invalid at ``invalid_output_rate``;
    ``stats["invalid_output"]`` counts those.
    """
    default = faults.config.default_max_tokens
    if ask is None:
        return complete(model_id, call, default)
    seed = request_seed(model_id, call.messages, call.system, call.inference_config)
    tokens = input_tokens(call.messages, call.system)
    invalid = faults.draw_invalid(model_id)
    stats["invalid_output"] += invalid
    structured = answer(ask, seed, tokens, max_tokens_of(call, default), invalid)
    return replace(structured, service_tier=call.service_tier)
