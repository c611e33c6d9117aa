"""The ``palette`` command (Typer): the one-machine system and the REST API's resources.

Exit statuses: 0 done; 1 an error answer of the API (its problem text is
printed) or a failed job; 2 bad input or configuration; 3 ``palette run`` of a
job that ended CANCELLED or BUDGET_EXCEEDED (what it made is downloaded);
130 Ctrl-C with the job left running.
"""

from __future__ import annotations

import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated

import typer

from palette.cli import cmd_jobs, cmd_local, cmd_seeds, cmd_templates
from palette.cli.api import USAGE_GROUPS, ApiError
from palette.cli.config import ConfigError
from palette.cli.context import Options, api_of
from palette.cli.job_options import JobFileOption, JobOptionsError, SetOption, job_extras
from palette.cli.local import LocalError
from palette.cli.output import JsonFlag, console, emit, errors, fields, table
from palette.cli.runjob import RunError, RunRequest, run

app = typer.Typer(
    name="palette",
    help="Plot Palette: synthetic datasets from LLMs under a budget that is never exceeded.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(cmd_templates.app, name="templates")
app.add_typer(cmd_seeds.app, name="seeds")
app.add_typer(cmd_jobs.app, name="jobs")
app.add_typer(cmd_local.config_app, name="config")
for command in (cmd_local.up, cmd_local.down, cmd_local.status, cmd_local.logs, cmd_local.token):
    app.command()(command)


@app.callback()
def root(
    ctx: typer.Context,
    url: Annotated[
        str | None,
        typer.Option(
            help="Gateway URL (else $PALETTE_URL, the config "
            "file, or the system `palette up` runs)."
        ),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="Bearer token (else $PALETTE_TOKEN, the "
            "config file, or one minted for the local "
            "system)."
        ),
    ] = None,
) -> None:
    """Options every command shares."""
    ctx.obj = Options(url=url, token=token)


@app.command("run")
def run_command(
    ctx: typer.Context,
    template: Annotated[str, typer.Argument(help="A template file (JSON or YAML) or template id.")],
    seeds: Annotated[Path, typer.Argument(help="A seed file: JSON array, JSONL or CSV.")],
    records: Annotated[int, typer.Option("--records", "-n", min=1, help="Records to make.")] = 1000,
    budget: Annotated[Decimal, typer.Option(help="Hard cap on spend, in USD.")] = Decimal("2.50"),
    output_format: Annotated[
        str, typer.Option("--format", help="jsonl, parquet or csv.")
    ] = "parquet",
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Folder for the dataset and its card.")
    ] = Path("out"),
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Launch without asking.")] = False,
    job_file: JobFileOption = None,
    sets: SetOption = None,
) -> None:
    """Upload seeds, create the template, confirm the estimate, run the job live, download it."""
    if budget <= 0:
        raise typer.BadParameter("the budget must be more than 0", param_hint="--budget")
    extras = job_extras(job_file, sets or [])
    request = RunRequest(
        str(template), str(seeds), records, budget, output_format, out, yes, extras
    )
    with api_of(ctx) as api:
        status = run(api, request, console)
    raise typer.Exit(status)


@app.command("usage")
def usage_command(
    ctx: typer.Context,
    start: Annotated[
        str | None, typer.Option("--from", help="First day (YYYY-MM-DD; default: 30 days ago).")
    ] = None,
    end: Annotated[str | None, typer.Option("--to", help="Last day (default: today).")] = None,
    group_by: Annotated[str, typer.Option(help=f"One of {', '.join(USAGE_GROUPS)}.")] = "day",
    as_json: JsonFlag = False,
) -> None:
    """Spend per day, model or template."""
    try:
        last = date.fromisoformat(end) if end else date.today()
        first = date.fromisoformat(start) if start else last - timedelta(days=30)
    except ValueError as exc:
        raise typer.BadParameter(f"dates are YYYY-MM-DD: {exc}") from None
    if group_by not in USAGE_GROUPS:
        raise typer.BadParameter(f"one of {', '.join(USAGE_GROUPS)}", param_hint="--group-by")
    with api_of(ctx) as api:
        answer = api.usage(first, last, group_by)

    def show() -> None:
        table(
            answer["rows"],
            [
                (group_by, "key"),
                ("kind", "kind"),
                ("cost (USD)", "cost_usd"),
                ("calls", "calls"),
                ("jobs/previews", "items"),
            ],
        )
        fields(
            answer,
            [
                "first_day",
                "last_day",
                "total_usd",
                "job_usd",
                "preview_usd",
                "preview_reserved_usd",
            ],
        )

    emit(answer, as_json, show)


def main() -> None:
    """Console script ``palette``."""
    try:
        app()
    except ApiError as exc:
        errors.print(exc.text(), markup=False, highlight=False)
        sys.exit(1)
    except (ConfigError, LocalError, RunError, JobOptionsError) as exc:
        errors.print(f"palette: {exc}", markup=False, highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
