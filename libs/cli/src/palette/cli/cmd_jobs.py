"""``palette jobs ...``: generation jobs over ``/jobs``."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.prompt import Confirm

from palette.cli.api import CANCEL_REQUESTED
from palette.cli.context import api_of
from palette.cli.job_options import JobFileOption, SetOption, job_extras
from palette.cli.output import JsonFlag, console, emit, errors, fields, print_json, table
from palette.cli.runjob import EXIT_DETACHED, fetch_dataset, watch_with_cancel

app = typer.Typer(help="Jobs: create, list, show, cancel, delete, watch, download.")

JOB_FIELDS = [
    "id",
    "status",
    "template_id",
    "template_version",
    "seed_key",
    "num_records",
    "records_done",
    "progress_percent",
    "cost_usd",
    "budget_usd",
    "reserved_usd",
    "remaining_usd",
    "output_format",
    "created_at",
    "started_at",
    "finished_at",
    "error",
    "export",
]


SHORT_FIELDS = ["target", "records_kept", "short_of_target", "short_of_target_reason"]
"""Shown too for a ``target: "kept"`` job that ended short of its target."""


def _show(job: dict[str, Any]) -> None:
    fields(job, JOB_FIELDS + (SHORT_FIELDS if job.get("short_of_target") else []))


@app.command("create")
def create(
    ctx: typer.Context,
    template: Annotated[str, typer.Option("--template", "-t", help="Template id.")],
    seeds: Annotated[str, typer.Option("--seeds", "-s", help="Seed file key (seed-data/...).")],
    records: Annotated[int, typer.Option("--records", "-n", min=1)],
    budget: Annotated[Decimal, typer.Option(help="Hard cap on spend, USD.")],
    output_format: Annotated[
        str, typer.Option("--format", help="jsonl, parquet or csv.")
    ] = "parquet",
    version: Annotated[
        int | None, typer.Option(help="Template version (latest if omitted).")
    ] = None,
    job_file: JobFileOption = None,
    sets: SetOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Launch a job from an uploaded seed file (`palette run` does the whole thing)."""
    body: dict[str, Any] = {
        "template_id": template,
        "seed_key": seeds,
        "num_records": records,
        "budget_usd": str(budget),
        "output_format": output_format,
        **job_extras(job_file, sets or []),
    }
    if version:
        body["template_version"] = version
    with api_of(ctx) as api:
        job = api.create_job(body, idempotency_key=uuid.uuid4().hex)
    emit(job, as_json, lambda: _show(job))


@app.command("list")
def list_jobs(
    ctx: typer.Context,
    status: Annotated[
        list[str] | None, typer.Option(help="Only these statuses (repeatable).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Your jobs, newest first."""
    with api_of(ctx) as api:
        items = []
        for job in api.jobs([s.upper() for s in status or []], limit=min(limit, 100)):
            items.append(job)
            if len(items) >= limit:
                break
    emit(
        items,
        as_json,
        lambda: table(
            items,
            [
                ("id", "id"),
                ("status", "status"),
                ("records", lambda j: f"{j['records_done']}/{j['num_records']}"),
                ("cost", lambda j: f"${j['cost_usd']} / ${j['budget_usd']}"),
                ("format", "output_format"),
                ("created", "created_at"),
            ],
        ),
    )


@app.command("show")
def show(ctx: typer.Context, job_id: str, as_json: JsonFlag = False) -> None:
    """A job's status, progress, cost and export."""
    with api_of(ctx) as api:
        job = api.job(job_id)
    emit(job, as_json, lambda: _show(job))


@app.command("cancel")
def cancel(ctx: typer.Context, job_id: str, as_json: JsonFlag = False) -> None:
    """Cancel a queued or running job (it exports what it made); never deletes anything."""
    with api_of(ctx) as api:
        answer = api.cancel(job_id)
    if as_json:
        print_json(answer)
    elif answer["outcome"] == CANCEL_REQUESTED:
        console.print(f"Cancelling job {job_id} (was {answer['job']['status']}).")
    else:
        console.print(
            f"Job {job_id} has already ended ({answer['job']['status']}); nothing to cancel."
        )


@app.command("delete")
def delete(
    ctx: typer.Context,
    job_id: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Delete a finished job with its records, dataset and ledger."""
    with api_of(ctx) as api:
        job = api.job(job_id)
        if job["status"] in {"QUEUED", "RUNNING"}:
            raise typer.BadParameter(
                f"job {job_id} is {job['status']}: cancel it first (`palette jobs cancel`)",
                param_hint="JOB_ID",
            )
        if not yes and not Confirm.ask(
            f"Delete job {job_id} and its dataset?", default=False, console=console
        ):
            raise typer.Exit(1)
        answer = api.delete_job(job_id)
    emit(answer, as_json, lambda: console.print(f"Deleting job {job_id}."))


@app.command("watch")
def watch(
    ctx: typer.Context,
    job_id: str,
    output: Annotated[
        Path | None, typer.Option("-o", help="Download the dataset here at the end.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Live progress until the job ends (Ctrl-C asks whether to cancel it)."""
    view = errors if as_json else console  # --json: stdout has the JSON alone
    with api_of(ctx) as api:
        final = watch_with_cancel(api, job_id, view)
        if final is None:
            raise typer.Exit(EXIT_DETACHED)
        if output is not None:
            fetch_dataset(api, final, output, view)
    emit(final, as_json, lambda: console.print(f"Status: {final['status']}"))


@app.command("download")
def download(
    ctx: typer.Context,
    job_id: str,
    output: Annotated[Path, typer.Option("-o", help="Folder for the dataset and its card.")] = Path(
        "."
    ),
    output_format: Annotated[str | None, typer.Option("--format", help="Another format.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Download a job's dataset (a running job's so far) with its dataset card."""
    from palette.cli.dataset import summarize, write_card
    from palette.cli.transfer import download as fetch

    with api_of(ctx) as api:
        job = api.job(job_id)
        path, link = fetch(api, job_id, output, errors if as_json else console, output_format)
        summary = summarize(path)
        template = (
            api.template(job["template_id"], job.get("template_version"))
            if job.get("template_id")
            else None
        )
        card = write_card(summary, job, template)
    result = {
        "path": str(path),
        "card": str(card),
        "records": summary.records,
        "partial": link.get("partial"),
        "bytes": path.stat().st_size,
    }
    emit(result, as_json, lambda: fields(result))
