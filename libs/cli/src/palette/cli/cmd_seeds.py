"""``palette seeds ...``: seed files over ``/seed-data``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from palette.cli.context import api_of
from palette.cli.output import JsonFlag, console, emit, errors, fields, table
from palette.cli.transfer import PRESIGN_BYTES, upload_seeds

app = typer.Typer(help="Seed files: upload, validate.")


@app.command("upload")
def upload(
    ctx: typer.Context,
    file: Path,
    name: Annotated[str | None, typer.Option(help="Name to store it under.")] = None,
    presigned: Annotated[
        bool,
        typer.Option(help="Send it straight to S3 with a presigned PUT (the default above 8 MiB)."),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Upload a JSON array, JSONL or CSV seed file (big files: a presigned upload)."""
    if not file.is_file():
        raise typer.BadParameter(f"no file {file}", param_hint="FILE")
    with api_of(ctx) as api:
        limit = 0 if presigned else PRESIGN_BYTES
        answer = upload_seeds(
            api, file, errors if as_json else console, name=name, presign_bytes=limit
        )
    emit(answer, as_json, lambda: fields(answer))


@app.command("validate")
def validate(
    ctx: typer.Context,
    key: str,
    template: Annotated[str, typer.Option("--template", "-t", help="Template id.")],
    version: Annotated[int | None, typer.Option(help="Template version.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Check every record of an uploaded seed file against a template's fields."""
    with api_of(ctx) as api:
        report = api.validate_seeds(key, template, version)

    def show() -> None:
        fields(
            report,
            [
                "key",
                "format",
                "template_id",
                "template_version",
                "valid",
                "records_checked",
                "records_missing_fields",
                "schema_requirements",
            ],
        )
        if report.get("examples"):
            table(report["examples"], [("missing", "missing"), ("record", "record")])

    emit(report, as_json, show)
    if not report["valid"]:
        raise typer.Exit(1)
