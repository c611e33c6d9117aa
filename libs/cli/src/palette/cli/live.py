"""The live view of a job, fed by its SSE stream (``GET /jobs/{id}/events``).

On a terminal it is one Rich ``Live`` panel: records done of total as a bar,
cost against budget as a bar that turns yellow at 75 % and orange at 90 %,
records/s, ETA, model calls and tokens, throttled and retried call attempts,
partitions in flight and the status.
Elsewhere (a pipe, a log) it prints one line per progress event. The stream
is opened again if it drops before its ``end`` event (a gateway restart).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from palette.cli.api import FINAL, Api, ApiError

WARN_PERCENT = 75.0
ALERT_PERCENT = 90.0
RECONNECTS = 20
STATUS_STYLES = {
    "COMPLETED": "bold green",
    "RUNNING": "bold cyan",
    "QUEUED": "bold",
    "FAILED": "bold red",
    "CANCELLED": "bold yellow",
    "BUDGET_EXCEEDED": "bold dark_orange",
}


def cost_style(percent: float) -> str:
    """The cost bar's colour: green, yellow from 75 %, orange from 90 % of the budget."""
    if percent >= ALERT_PERCENT:
        return "dark_orange"
    if percent >= WARN_PERCENT:
        return "yellow"
    return "green"


def _eta(seconds: float | None) -> str:
    return str(timedelta(seconds=round(seconds))) if seconds is not None else "-"


def _rate(dash: dict[str, Any]) -> str:
    rate = dash["progress"].get("records_per_second")
    return f"{rate:.1f}/s" if rate is not None else "-"


def render(dash: dict[str, Any]) -> RenderableType:
    """The panel of one dashboard."""
    progress, budget, tokens = dash["progress"], dash["budget"], dash["tokens"]
    status = dash["status"]
    percent = float(budget["percent_spent"])
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(width=32)
    grid.add_column(no_wrap=True)
    grid.add_row(
        "Records",
        ProgressBar(total=max(progress["target"], 1), completed=progress["done"], width=32),
        f"{progress['done']} / {progress['target']} ({progress['percent']:.1f} %)",
    )
    grid.add_row(
        "Cost",
        ProgressBar(
            total=100.0,
            completed=min(percent, 100.0),
            width=32,
            complete_style=cost_style(percent),
            finished_style=cost_style(percent),
        ),
        f"${budget['spent_usd']} of ${budget['limit_usd']} ({percent:.1f} %)",
    )
    grid.add_row("Rate", "", f"{_rate(dash)}   ETA {_eta(dash['timing'].get('eta_seconds'))}")
    grid.add_row(
        "Calls",
        "",
        f"{tokens['calls']} ({tokens['input']} in / {tokens['output']} out tokens); "
        f"partitions in flight {progress['partitions_in_flight']}",
    )
    grid.add_row(
        "Retries",
        "",
        f"{tokens.get('throttled', 0)} throttled, {tokens.get('retried', 0)} retried, "
        f"{tokens.get('quota_wait_seconds', 0):.1f} s waited for quota",
    )
    if progress.get("partitions_paused"):
        reason = progress.get("paused_reason") or ""
        grid.add_row("Paused", "", f"{progress['partitions_paused']} partitions: {reason}")
    if progress.get("short_of_target"):
        grid.add_row("Short", "", progress.get("short_of_target_reason") or "short of target")
    line = Text.assemble(
        ("Job ", "bold"), dash["job_id"], "  ", (status, STATUS_STYLES.get(status, "bold"))
    )
    return Group(line, grid)


def line(dash: dict[str, Any]) -> str:
    """One plain line of a dashboard (when the output is not a terminal)."""
    progress, budget, tokens = dash["progress"], dash["budget"], dash["tokens"]
    return (
        f"{dash['status']} records {progress['done']}/{progress['target']} "
        f"cost ${budget['spent_usd']} of ${budget['limit_usd']} ({budget['percent_spent']:.1f} %) "
        f"rate {_rate(dash)} eta {_eta(dash['timing'].get('eta_seconds'))} "
        f"throttled {tokens.get('throttled', 0)} retried {tokens.get('retried', 0)}"
        + (" SHORT OF TARGET" if progress.get("short_of_target") else "")
    )


def watch(
    api: Api,
    job_id: str,
    console: Console,
    on_dashboard: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Show the job until its stream's ``end`` event; the finished job (a JobView)."""
    dash = api.dashboard(job_id)
    live = (
        Live(render(dash), console=console, refresh_per_second=8, transient=False)
        if console.is_terminal
        else None
    )
    if live is None:
        console.print(line(dash), soft_wrap=True)
    try:
        if live is not None:
            live.start()
        return _follow(api, job_id, console, live, on_dashboard)
    finally:
        if live is not None:
            live.stop()


def _follow(
    api: Api,
    job_id: str,
    console: Console,
    live: Live | None,
    on_dashboard: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    printed = ""
    for attempt in range(RECONNECTS + 1):
        try:
            for event, data in api.events(job_id):
                if event == "progress":
                    if on_dashboard is not None:
                        on_dashboard(data)
                    if live is not None:
                        live.update(render(data))
                    elif (text := line(data)) != printed:  # a change the line does not show
                        console.print(text, soft_wrap=True)
                        printed = text
                elif event == "end":
                    if data.get("status") == "DELETED":
                        raise ApiError(404, {"detail": f"job {job_id} was deleted"})
                    if live is not None:
                        live.update(render(api.dashboard(job_id)))
                    return data
        except ApiError as exc:
            if exc.status not in {0, 502, 503, 504} or attempt == RECONNECTS:
                raise
        job = api.job(job_id)
        if job["status"] in FINAL and (job.get("export") or job["status"] == "FAILED"):
            return job
        time.sleep(min(0.5 * (attempt + 1), 5.0))
    raise ApiError(0, {"detail": f"lost the event stream of job {job_id}"})
