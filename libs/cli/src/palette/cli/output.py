"""What commands print: JSON for scripts (``--json``), Rich tables for people, errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

JsonFlag = Annotated[bool, typer.Option("--json", help="Print the API's JSON (for scripts).")]

console = Console()
errors = Console(stderr=True)


def print_json(data: Any) -> None:
    """JSON on stdout, nothing else."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()


def table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[tuple[str, str | Callable[[dict[str, Any]], Any]]],
    title: str | None = None,
) -> None:
    """A table of rows; each column is (heading, key or function of the row)."""
    grid = Table(title=title)
    for heading, _ in columns:
        grid.add_column(heading, overflow="fold")
    for row in rows:
        cells = [get(row) if callable(get) else row.get(get) for _, get in columns]
        grid.add_row(*("" if c is None else str(c) for c in cells))
    console.print(grid)


def fields(data: dict[str, Any], keys: Sequence[str] | None = None) -> None:
    """One ``key: value`` line per field."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key in keys or list(data):
        value = data.get(key)
        if isinstance(value, dict | list):
            value = json.dumps(value, default=str)
        grid.add_row(key, "" if value is None else str(value))
    console.print(grid)


def emit(data: Any, as_json: bool, show: Callable[[], None]) -> None:
    """``--json``: the data; else what ``show`` prints."""
    if as_json:
        print_json(data)
    else:
        show()
