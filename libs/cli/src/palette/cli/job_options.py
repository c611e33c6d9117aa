"""More job fields for ``palette run`` and ``palette jobs create``: a file and ``--set``.

The commands set the template, seeds, record count, budget and format
themselves; every other field of ``POST /jobs`` (``keep_if``, ``dedup``,
``target``, ``max_generated``, ``seed_sampling``, ``mode``, ``service_tier``,
``partition_size``, ``priority``, ...) comes from ``--job FILE`` (a JSON or
YAML object) and from ``--set FIELD=VALUE`` (repeatable, applied after the
file; a VALUE that parses as JSON is taken as JSON, else as text). The gateway
checks the fields and names any it refuses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

OWN_FIELDS = frozenset(
    {"template_id", "template_version", "seed_key", "num_records", "budget_usd", "output_format"}
)
"""Fields the commands set from their own arguments."""


JobFileOption = Annotated[
    Path | None,
    typer.Option(
        "--job",
        help="A JSON or YAML object of more job fields (keep_if, dedup, target, mode, ...).",
    ),
]
SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="A job field FIELD=VALUE (VALUE as JSON if it parses), e.g. --set target=kept; "
        "repeatable, after --job.",
    ),
]


class JobOptionsError(ValueError):
    """A job options file or ``--set`` that cannot be used; the message names it."""


def parse_set(item: str) -> tuple[str, Any]:
    """``FIELD=VALUE`` as a field name and its value (JSON when it parses, else text)."""
    name, sep, raw = item.partition("=")
    name = name.strip()
    if not sep or not name:
        raise JobOptionsError(f"--set {item!r}: expected FIELD=VALUE, e.g. --set target=kept")
    try:
        value: Any = json.loads(raw)
    except ValueError:
        value = raw
    return name, value


def load_file(path: Path) -> Any:
    """A JSON file's value, or a YAML one's (``.yaml``, ``.yml``).

    Raises OSError, ValueError or yaml.YAMLError (``READ_ERRORS``).
    """
    text = path.read_text(encoding="utf-8")
    return yaml.safe_load(text) if path.suffix in {".yaml", ".yml"} else json.loads(text)


READ_ERRORS = (OSError, ValueError, yaml.YAMLError)


def read_job_file(path: Path) -> dict[str, Any]:
    """A JSON or YAML object of job fields."""
    try:
        data = load_file(path)
    except READ_ERRORS as exc:
        raise JobOptionsError(f"cannot read the job options {path}: {exc}") from None
    if not isinstance(data, dict):
        raise JobOptionsError(f"the job options {path} must be an object of job fields")
    return data


def job_extras(path: Path | None, sets: Iterable[str]) -> dict[str, Any]:
    """The extra job fields of ``--job`` then ``--set``; none of the commands' own fields."""
    extras = read_job_file(path) if path is not None else {}
    for item in sets:
        name, value = parse_set(item)
        extras[name] = value
    own = sorted(OWN_FIELDS & extras.keys())
    if own:
        where = f"{path}" if path is not None else "--set"
        raise JobOptionsError(
            f"{where} sets {', '.join(own)}: give those as the command's own arguments "
            "(template, seeds, --records, --budget, --format)"
        )
    return extras
