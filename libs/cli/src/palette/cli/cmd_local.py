"""``palette up``, ``down``, ``status``, ``logs``, ``token`` and ``config``."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from palette.cli import local
from palette.cli.config import KEYS, config_path, mint_local, read_config, write_config
from palette.cli.output import JsonFlag, console, emit, fields, print_json, table
from palette.cli.state import RunRecord, StateDir

StateOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Data and logs (default: $PALETTE_STATE_DIR or ~/.local/share/palette).",
        show_default=False,
    ),
]


def _state(ctx: typer.Context, state_dir: Path | None) -> StateDir:
    root = ctx.find_root().obj
    return StateDir(state_dir or getattr(root, "state_dir", None))


def _addresses(record: RunRecord) -> dict[str, object]:
    metrics = {p.name: p.url for p in record.processes if p.url and p.url.endswith("/metrics")}
    return {"api": record.gateway_url, "docs": record.docs_url, "metrics": metrics}


def up(
    ctx: typer.Context,
    state_dir: StateOption = None,
    generators: Annotated[int, typer.Option(min=1, help="Generator processes.")] = 2,
    port: Annotated[
        int | None,
        typer.Option(
            help="Gateway port (default: the last one, else "
            "8000, else any free one; 0: any free one)."
        ),
    ] = None,
    rabbitmq_url: Annotated[
        str | None, typer.Option(help="Broker (default: $RABBITMQ_URL or the local guest one).")
    ] = None,
    emulator_latency_ms: Annotated[
        float, typer.Option(help="The Bedrock emulator's latency per call.")
    ] = 150.0,
    as_json: JsonFlag = False,
) -> None:
    """Start the one-machine system in the background (harmless when it already runs)."""
    state = _state(ctx, state_dir)
    if not as_json:
        console.print(f"Starting Plot Palette in {state.path} ...")
    result = local.up(
        state,
        port=port,
        generators=generators,
        rabbitmq_url=rabbitmq_url,
        emulator_latency_ms=emulator_latency_ms,
    )
    info = {
        "state_dir": str(state.path),
        "already_running": result.already_running,
        **_addresses(result.record),
    }

    def show() -> None:
        if result.already_running:
            console.print("Already running.")
        console.print(f"REST API: [bold]{result.record.gateway_url}[/]")
        console.print(f"API docs: {result.record.docs_url}")
        console.print(f"Web page: {result.record.gateway_url}/ui/")
        for name, url in info["metrics"].items():  # type: ignore[attr-defined]
            console.print(f"Metrics:  {url}  ({name})")
        console.print(f"Logs:     {state.log_dir}  (`palette logs -f`)")

    emit(info, as_json, show)


def down(ctx: typer.Context, state_dir: StateOption = None, as_json: JsonFlag = False) -> None:
    """Stop every process (SIGTERM, then wait); the data stays for the next `up`."""
    state = _state(ctx, state_dir)
    stopped = local.down(state)
    emit(
        {"state_dir": str(state.path), "stopped": stopped},
        as_json,
        lambda: console.print("Stopped." if stopped else f"Nothing runs from {state.path}."),
    )


def status(ctx: typer.Context, state_dir: StateOption = None, as_json: JsonFlag = False) -> None:
    """Each process, its health, and the broker's queue depths."""
    state = _state(ctx, state_dir)
    record = state.read_run()  # after a crash, what it left (and `up` cleans up)
    if record is None:
        emit(
            {"state_dir": str(state.path), "running": False},
            as_json,
            lambda: console.print(f"Not running (state dir {state.path})."),
        )
        raise typer.Exit(3)
    rows = [vars(row) for row in local.process_status(record)]
    try:
        depths: dict[str, int | None] | str = local.broker_depths(record)
    except Exception as exc:
        depths = f"unreachable: {exc!r}"
    info = {
        "state_dir": str(state.path),
        "running": True,
        **_addresses(record),
        "processes": rows,
        "queues": depths,
    }

    def show() -> None:
        table(
            rows,
            [
                ("process", "name"),
                ("pid", "pid"),
                ("running", "running"),
                ("health", "health"),
                ("address", "url"),
            ],
            title="Processes",
        )
        if isinstance(depths, str):
            console.print(f"Queues: {depths}")
        else:
            table(
                [{"queue": q, "ready": d} for q, d in depths.items()],
                [("queue", "queue"), ("messages ready", "ready")],
                title="Queues",
            )

    emit(info, as_json, show)
    if not all(row["running"] for row in rows):
        raise typer.Exit(1)


def logs(
    ctx: typer.Context,
    service: Annotated[
        str | None,
        typer.Argument(
            help="gateway, scheduler, accounting, generator, secantus, s3, emulator, supervisor"
        ),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
    lines: Annotated[int, typer.Option("--lines", "-n", min=0)] = 50,
    state_dir: StateOption = None,
) -> None:
    """Print (or follow) the logs of one service, or of all of them."""
    state = _state(ctx, state_dir)
    files = local.log_files(state, service)
    tail = shutil.which("tail")
    if tail is None:
        for file in files:
            console.print(local.tail(file, lines), markup=False, highlight=False)
        return
    argv = [tail, "-n", str(lines), *(["-F"] if follow else []), *map(str, files)]
    sys.stdout.flush()
    os.execv(tail, argv)  # noqa: S606 - tail by its full path, our own arguments


def token(
    ctx: typer.Context,
    sub: Annotated[
        str | None,
        typer.Option(
            help="The user (default: $PALETTE_USER, the config's user, or your login name)."
        ),
    ] = None,
    ttl: Annotated[int, typer.Option(min=60, help="Seconds the token is valid.")] = 12 * 3600,
    state_dir: StateOption = None,
) -> None:
    """Mint a development token for the one-machine system's gateway."""
    typer.echo(mint_local(_state(ctx, state_dir), sub=sub, ttl_seconds=ttl))


config_app = typer.Typer(help="The config file: url, token, user.")


@config_app.command("show")
def config_show(as_json: JsonFlag = False) -> None:
    """The config file's values (the token shortened)."""
    values = read_config()
    shown = {
        k: (v[:12] + "..." if k == "token" and len(str(v)) > 12 else v) for k, v in values.items()
    }
    if as_json:
        print_json({"file": str(config_path()), **shown})
    else:
        console.print(f"{config_path()}")
        fields(shown)


@config_app.command("set")
def config_set(key: str, value: str) -> None:
    """Set ``url``, ``token`` or ``user`` in the config file."""
    if key not in KEYS:
        raise typer.BadParameter(f"unknown key {key!r}; known keys are {', '.join(KEYS)}")
    values = read_config()
    values[key] = value
    console.print(f"Wrote {write_config(values)}")


@config_app.command("unset")
def config_unset(key: str) -> None:
    """Remove a key from the config file."""
    values = read_config()
    values.pop(key, None)
    console.print(f"Wrote {write_config(values)}")
