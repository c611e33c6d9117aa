"""``palette templates ...``: prompt templates over ``/templates``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from palette.cli.context import api_of
from palette.cli.output import JsonFlag, console, emit, fields, table
from palette.cli.runjob import RunError, read_template_file

app = typer.Typer(
    help="Prompt templates: create, list, show, versions, fork, preview, export, import."
)

Version = Annotated[
    int | None, typer.Option("--version", "-v", help="A version (latest if omitted).")
]


def _show(template: dict[str, Any]) -> None:
    fields(
        template,
        [
            "id",
            "version",
            "name",
            "public",
            "owned",
            "schema_requirements",
            "forked_from",
            "created_at",
        ],
    )
    table(
        template["steps"],
        [("step", "id"), ("model", "model"), ("max_tokens", "max_tokens"), ("prompt", "prompt")],
    )


@app.command("create")
def create(ctx: typer.Context, file: Path, as_json: JsonFlag = False) -> None:
    """Create a template from a JSON or YAML file (version 1)."""
    with api_of(ctx) as api:
        body = read_template_file(file)
        created = api.create_template(body)
    emit(created, as_json, lambda: _show(created))


@app.command("list")
def list_templates(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Your templates and the public ones (latest versions)."""
    with api_of(ctx) as api:
        items = list(api.templates())
    emit(
        items,
        as_json,
        lambda: table(
            items,
            [
                ("id", "id"),
                ("name", "name"),
                ("version", "version"),
                ("public", "public"),
                ("owned", "owned"),
                ("steps", lambda t: len(t["steps"])),
                ("created", "created_at"),
            ],
        ),
    )


@app.command("show")
def show(
    ctx: typer.Context, template_id: str, version: Version = None, as_json: JsonFlag = False
) -> None:
    """One version of a template."""
    with api_of(ctx) as api:
        template = api.template(template_id, version)
    emit(template, as_json, lambda: _show(template))


@app.command("versions")
def versions(ctx: typer.Context, template_id: str, as_json: JsonFlag = False) -> None:
    """Every version of a template, newest first."""
    with api_of(ctx) as api:
        answer = api.template_versions(template_id)
    emit(
        answer,
        as_json,
        lambda: table(
            answer["versions"],
            [
                ("version", "version"),
                ("name", "name"),
                ("public", "public"),
                ("created", "created_at"),
            ],
        ),
    )


@app.command("fork")
def fork(
    ctx: typer.Context,
    template_id: str,
    version: Version = None,
    name: Annotated[str | None, typer.Option(help="Name of the copy.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Copy a public (or your own) template as a new template of yours."""
    with api_of(ctx) as api:
        forked = api.fork_template(template_id, name, version)
    emit(forked, as_json, lambda: _show(forked))


@app.command("preview")
def preview(
    ctx: typer.Context,
    template_id: str,
    seed: Annotated[str, typer.Option(help="A seed record: JSON text, or a .json file.")],
    version: Version = None,
    run: Annotated[bool, typer.Option("--run", help="Call the model once (costs money).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Each step's rendered prompt and worst-case cost (with --run, the model's output)."""
    text = Path(seed).read_text(encoding="utf-8") if Path(seed).is_file() else seed
    try:
        record = json.loads(text)
    except ValueError as exc:
        raise RunError(f"--seed is neither a JSON object nor a JSON file: {exc}") from None
    with api_of(ctx) as api:
        answer = api.preview(template_id, record, run=run, version=version)

    def show() -> None:
        for step in answer["steps"]:
            console.rule(f"step {step.get('id')} ({step.get('model')})")
            console.print(step.get("prompt"), markup=False)
            if step.get("output") is not None:
                console.print("[bold]output:[/]")
                console.print(step["output"], markup=False)
        fields(answer, ["template_id", "version", "worst_case_usd", "cost_usd", "error"])

    emit(answer, as_json, show)


@app.command("export")
def export(
    ctx: typer.Context,
    template_id: str,
    version: Version = None,
    output: Annotated[Path | None, typer.Option("-o", help="Write to this file.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """A template version as YAML (stdout, or -o FILE)."""
    with api_of(ctx) as api:
        text = api.export_template(template_id, version)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    if as_json:
        emit(
            {"template_id": template_id, "yaml": text, "file": str(output) if output else None},
            True,
            lambda: None,
        )
    elif output is None:
        typer.echo(text, nl=not text.endswith("\n"))
    else:
        console.print(f"Wrote {output}")


@app.command("import")
def import_yaml(ctx: typer.Context, file: Path, as_json: JsonFlag = False) -> None:
    """Create a template from a YAML file (what `export` writes)."""
    with api_of(ctx) as api:
        created = api.import_template(file.read_text(encoding="utf-8"))
    emit(created, as_json, lambda: _show(created))
