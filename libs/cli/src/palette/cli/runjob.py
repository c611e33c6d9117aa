"""``palette run``: seeds, template, estimate, launch, live view, download and card.

Every step is a REST call (``palette.cli.api``); the order is the one a user
would follow by hand: upload the seeds, create (or reuse) the template, check
the seeds against it, preview one record for the cost estimate, confirm,
create the job, watch it over SSE (Ctrl-C asks whether to cancel it), then
download what it made and write its dataset card.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.prompt import Confirm

from palette.cli.api import CANCEL_REQUESTED, Api, ApiError
from palette.cli.dataset import DatasetSummary, summarize, write_card
from palette.cli.job_options import READ_ERRORS, load_file
from palette.cli.live import watch
from palette.cli.transfer import download, upload_seeds
from palette.common.seeds import SeedError, read_records

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_STOPPED = 3
"""The job ended CANCELLED or BUDGET_EXCEEDED: what it made was downloaded."""
EXIT_DETACHED = 130
"""Ctrl-C, and the job was left running."""


class RunError(RuntimeError):
    """Bad input to ``palette run`` (the message names it)."""


@dataclass
class RunRequest:
    """The arguments of ``palette run``."""

    template: str
    seeds: str
    records: int
    budget: Decimal
    output_format: str
    out_dir: Path
    yes: bool = False
    extras: dict[str, Any] = field(default_factory=dict)
    """More job fields (``--job``, ``--set``: ``palette.cli.job_options``)."""


def read_template_file(path: Path) -> dict[str, Any]:
    """A template body from a JSON or YAML file."""
    try:
        body = load_file(path)
    except READ_ERRORS as exc:
        raise RunError(f"cannot read the template {path}: {exc}") from None
    if not isinstance(body, dict):
        raise RunError(f"the template {path} must be an object with 'name' and 'steps'")
    return body


def _same_steps(wanted: list[dict[str, Any]], stored: list[dict[str, Any]]) -> bool:
    return len(wanted) == len(stored) and all(
        all(stored_step.get(k) == v for k, v in step.items())
        for step, stored_step in zip(wanted, stored, strict=True)
    )


def ensure_template(api: Api, arg: str, console: Console) -> dict[str, Any]:
    """The template: an existing id, or a file's template (reused if stored unchanged)."""
    path = Path(arg)
    if not path.exists():
        try:
            return api.template(arg)
        except ApiError as exc:
            if exc.status == 404:
                raise RunError(f"{arg!r} is neither a template file nor a template id") from None
            raise
    body = read_template_file(path)
    for stored in api.templates():
        if stored.get("owned") and stored["name"] == body.get("name"):
            if _same_steps(list(body.get("steps") or []), list(stored["steps"])):
                console.print(
                    f"Template [bold]{stored['name']}[/] {stored['id']} "
                    f"(version {stored['version']}, unchanged)"
                )
                return stored
            updated = api.update_template(stored["id"], body)
            console.print(
                f"Template [bold]{updated['name']}[/] {updated['id']} "
                f"(new version {updated['version']})"
            )
            return updated
    created = api.create_template(body)
    console.print(f"Template [bold]{created['name']}[/] {created['id']} (created)")
    return created


def first_seed(path: Path) -> dict[str, Any]:
    """The first record of a local seed file (for the cost preview)."""
    try:
        with path.open("rb") as file:
            for record in read_records(file):
                return record
    except SeedError as exc:
        raise RunError(f"the seed file {path} cannot be read: {exc}") from None
    raise RunError(f"the seed file {path} has no records")


@dataclass
class Estimate:
    """What a job of ``records`` records may cost, from a template preview."""

    records: int
    worst_case_usd: Decimal
    expected_usd: Decimal | None = None


def estimate(preview: dict[str, Any], records: int) -> Estimate:
    """The preview's job-level estimate (``estimate``; its mean only when records were run)."""
    job_level = preview["estimate"]
    mean = job_level.get("mean_usd")
    return Estimate(
        records,
        Decimal(str(job_level["worst_case_usd"])),
        Decimal(str(mean)) if mean is not None else None,
    )


def confirm_launch(req: RunRequest, preview: dict[str, Any], console: Console) -> bool:
    """Show the estimate; ask unless ``--yes``."""
    guess = estimate(preview, req.records)
    capped = min(guess.worst_case_usd, req.budget)
    text = f"Estimate: at most ${guess.worst_case_usd:.6f} for {req.records} records (worst case)"
    if guess.expected_usd is not None:
        text += f", about ${guess.expected_usd:.6f} expected"
    console.print(f"{text}; budget ${req.budget}: the job spends at most ${capped:.6f}.")
    if req.yes:
        return True
    if not console.is_terminal:
        raise RunError("not a terminal, so nobody can confirm: pass --yes to launch")
    return Confirm.ask("Launch the job?", default=True, console=console)


def watch_with_cancel(api: Api, job_id: str, console: Console) -> dict[str, Any] | None:
    """Watch until the job ends; Ctrl-C asks whether to cancel it (None: left running)."""
    while True:
        try:
            return watch(api, job_id, console)
        except KeyboardInterrupt:
            console.print()
            try:
                answer = Confirm.ask(f"Cancel job {job_id}?", default=False, console=console)
            except (KeyboardInterrupt, EOFError):
                answer = False
            if not answer:
                console.print(
                    f"Job {job_id} goes on; `palette jobs watch {job_id}` shows it again."
                )
                return None
            cancelled = api.cancel(job_id)
            console.print(
                f"Cancelling job {job_id} ..."
                if cancelled["outcome"] == CANCEL_REQUESTED
                else f"Job {job_id} had already ended ({cancelled['job']['status']})."
            )


def fetch_dataset(
    api: Api, job: dict[str, Any], out_dir: Path, console: Console, seed_name: str | None = None
) -> DatasetSummary | None:
    """Download what the job made, write its card, print path, count, cost and samples."""
    if not job.get("export") and not job.get("records_done"):
        console.print(f"Job {job['id']} made no records; nothing to download.")
        return None
    path, _ = download(api, job["id"], out_dir, console)
    summary = summarize(path)
    template = None
    if job.get("template_id"):
        template = api.template(job["template_id"], job.get("template_version"))
    card = write_card(summary, job, template, seed_name)
    console.print(f"Dataset: [bold]{path}[/] ({summary.records} records)")
    console.print(f"Card:    {card}")
    console.print(f"Cost:    ${job['cost_usd']} of ${job['budget_usd']}")
    for i, sample in enumerate(summary.samples, 1):
        console.print(f"Sample {i}:")
        console.print_json(json.dumps(sample, default=str))
    return summary


def run(api: Api, req: RunRequest, console: Console) -> int:
    """The whole job; an exit status (``EXIT_*``)."""
    if req.output_format not in {"jsonl", "parquet", "csv"}:
        raise RunError(f"--format must be jsonl, parquet or csv, not {req.output_format!r}")
    seeds_path = Path(req.seeds)
    if not seeds_path.is_file():
        raise RunError(f"no seed file {req.seeds!r}")
    seed_record = first_seed(seeds_path)
    template = ensure_template(api, req.template, console)
    uploaded = upload_seeds(api, seeds_path, console)
    seed_key = uploaded["key"]
    console.print(f"Seeds:    {seed_key} ({uploaded['bytes']} bytes)")
    report = api.validate_seeds(seed_key, template["id"], template["version"])
    if not report["valid"]:
        example = (report.get("examples") or [{}])[0]
        raise RunError(
            f"{report['records_missing_fields']} of {report['records_checked']} seed records lack "
            f"fields the template needs, e.g. {example.get('missing')}"
        )
    preview = api.preview(
        template["id"], seed_record, version=template["version"], num_records=req.records
    )
    if not confirm_launch(req, preview, console):
        console.print("Not launched.")
        return EXIT_OK
    body = {
        "template_id": template["id"],
        "template_version": template["version"],
        "seed_key": seed_key,
        "num_records": req.records,
        "budget_usd": str(req.budget),
        "output_format": req.output_format,
        **req.extras,
    }
    job = api.create_job(body, idempotency_key=uuid.uuid4().hex)
    console.print(f"Job {job['id']}: {req.records} records, budget ${req.budget}")
    final = watch_with_cancel(api, job["id"], console)
    if final is None:
        return EXIT_DETACHED
    console.print(
        f"Status:  {final['status']}" + (f" ({final['error']})" if final.get("error") else "")
    )
    fetch_dataset(api, final, req.out_dir, console, seeds_path.name)
    if final["status"] == "COMPLETED":
        return EXIT_OK
    return EXIT_FAILED if final["status"] == "FAILED" else EXIT_STOPPED
