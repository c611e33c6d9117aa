"""Which model answers a schema how: structured output (``json_schema``) or forced tool use.

The table ships as ``structured_output.json`` beside this module (an explicit
path replaces it), each entry with its source and date, like the pricing
table. An inference profile is looked up as its base model.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from palette.common.model_ids import base_model_id

DEFAULT_SUPPORT_FILE = Path(__file__).with_name("structured_output.json")

Mode = Literal["json_schema", "tool"]


class SupportEntry(BaseModel):
    """How one model is asked for a structured answer."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mode: Mode
    tool_choice: Literal["tool", "any"] = Field(
        "tool", description="A forced tool use's toolChoice: the tool by name, or any (one tool)."
    )
    source: str = Field(min_length=1)
    as_of: str = Field(min_length=1, description="Date the fact was read, ISO 8601")


class SupportFile(BaseModel):
    """The file: notes, then model id to entry."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    notes: list[str] = Field(default_factory=list)
    models: dict[str, SupportEntry]


class NoStructuredOutputError(LookupError):
    """A model with no way of answering a schema."""

    def __init__(self, model_id: str) -> None:
        super().__init__(
            f"model {model_id!r} supports neither structured output nor forced tool use "
            "(structured_output.json): it cannot answer an output_schema or judge step"
        )
        self.model_id = model_id


class StructuredSupport:
    """Looks up a model's mode; NoStructuredOutputError for a model the table lacks."""

    def __init__(self, models: dict[str, SupportEntry]) -> None:
        self._models = dict(models)

    @classmethod
    def load(cls, path: Path | str | None = None) -> StructuredSupport:
        """Load a support file (the shipped table when ``path`` is None)."""
        file = Path(path) if path else DEFAULT_SUPPORT_FILE
        data = SupportFile.model_validate(json.loads(file.read_text(encoding="utf-8")))
        return cls(data.models)

    def entry(self, model_id: str) -> SupportEntry:
        """The entry of a model or inference profile (its base model's)."""
        entry = self._models.get(model_id) or self._models.get(base_model_id(model_id))
        if entry is None:
            raise NoStructuredOutputError(model_id)
        return entry


@lru_cache(maxsize=4)
def load_support(path: str | None = None) -> StructuredSupport:
    """Cached ``StructuredSupport.load``."""
    return StructuredSupport.load(path)
