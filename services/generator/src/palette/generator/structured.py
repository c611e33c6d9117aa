"""Structured answers of a step: the request fields, the input bound, parsing and validating.

Pure logic, no I/O. A step with a schema (``output_schema``, or a judge's) asks
its model in the way ``structured_output.json`` names: Converse's structured
output (``outputConfig.textFormat`` of type ``json_schema``, the schema as JSON
text) or forced tool use (``toolConfig`` with one tool whose ``inputSchema`` is
the schema, ``toolChoice`` naming it). Bedrock counts the schema as input
tokens, so the call's input bound counts its text too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from palette.common.output_schema import TOOL_NAME, canonical, parse_output
from palette.common.steps import Step
from palette.common.structured_support import Mode, StructuredSupport


@dataclass(frozen=True, slots=True)
class StructuredOutput:
    """How one call asks for a structured answer."""

    mode: Mode
    schema: dict[str, Any]
    text: str
    """The schema as canonical JSON (what the request carries, counted in the input bound)."""
    tool_choice: str = "tool"

    def request_fields(self) -> dict[str, Any]:
        """The Converse request fields that ask for the schema."""
        if self.mode == "json_schema":
            return {
                "outputConfig": {
                    "textFormat": {
                        "type": "json_schema",
                        "structure": {"jsonSchema": {"schema": self.text, "name": TOOL_NAME}},
                    }
                }
            }
        choice: dict[str, Any] = (
            {"tool": {"name": TOOL_NAME}} if self.tool_choice == "tool" else {"any": {}}
        )
        spec = {
            "name": TOOL_NAME,
            "description": "Record the answer, exactly in this schema.",
            "inputSchema": {"json": self.schema},
        }
        return {"toolConfig": {"tools": [{"toolSpec": spec}], "toolChoice": choice}}

    def parse(self, text: str, tool_input: Any) -> Any:
        """The answer's value, validated (OutputInvalidError when it is not valid)."""
        return parse_output(text, tool_input if self.mode == "tool" else None, self.schema)


def for_step(step: Step, support: StructuredSupport) -> StructuredOutput | None:
    """How ``step``'s call asks for its schema (None: a text step).

    Raises:
        NoStructuredOutputError: the step has a schema its model cannot answer.
    """
    schema = step.answer_schema
    if schema is None:
        return None
    entry = support.entry(step.model)
    return StructuredOutput(entry.mode, schema, canonical(schema), entry.tool_choice)
