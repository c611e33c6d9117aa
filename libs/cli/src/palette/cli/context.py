"""The options every resource command shares (``--url``, ``--token``), and its API client."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import typer

from palette.cli.api import Api
from palette.cli.config import resolve


@dataclass
class Options:
    """The root command's options."""

    url: str | None = None
    token: str | None = None
    state_dir: Path | None = None


def api_of(ctx: typer.Context) -> Api:
    """A client of the gateway the options, environment and config file name."""
    options = ctx.find_root().obj
    if not isinstance(options, Options):
        options = Options()
    return Api(resolve(options.url, options.token, options.state_dir))
