"""Seed uploads and dataset downloads, with a progress bar (Rich).

A seed file goes as the body of ``POST /seed-data`` up to ``PRESIGN_BYTES``;
a bigger one goes straight to S3 with a presigned PUT (``POST /seed-data/uploads``)
and is checked by ``POST /seed-data/validate``. A dataset comes from the
presigned GET of ``GET /jobs/{id}/download``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TransferSpeedColumn,
)

from palette.cli.api import Api, ApiError, save_stream

PRESIGN_BYTES = 8 * 1024 * 1024
CHUNK = 256 * 1024


def _progress(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=not console.is_terminal,
        disable=not console.is_terminal,
    )


def _chunks(path: Path, advance: Callable[[int], None]) -> Iterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(CHUNK):
            advance(len(chunk))
            yield chunk


def upload_seeds(
    api: Api,
    path: Path,
    console: Console,
    *,
    name: str | None = None,
    presign_bytes: int = PRESIGN_BYTES,
) -> dict[str, Any]:
    """Upload a seed file; ``{"key", "bytes", "records"?, "presigned"}``."""
    size = path.stat().st_size
    filename = name or path.name
    with _progress(console) as progress:
        task = progress.add_task(f"Uploading {path.name}", total=size)

        def advance(n: int) -> None:
            progress.advance(task, n)

        headers = {"Content-Length": str(size)}
        if size <= presign_bytes:
            result = api.json(
                "POST",
                "/seed-data",
                params={"filename": filename},
                content=_chunks(path, advance),
                headers=headers,
            )
            return {**result, "presigned": False}
        ticket = api.seed_upload_ticket(filename, size)
        try:
            response = httpx.put(
                ticket["url"],
                content=_chunks(path, advance),
                headers={**ticket["headers"], **headers},
                timeout=httpx.Timeout(30.0, write=300.0),
            )
        except httpx.TransportError as exc:
            raise api.unreachable(exc) from None
        if response.status_code >= 400:
            raise ApiError.of(response)
        return {"key": ticket["key"], "bytes": size, "presigned": True}


def download(
    api: Api, job_id: str, out_dir: Path, console: Console, fmt: str | None = None
) -> tuple[Path, dict[str, Any]]:
    """Download a job's dataset (or a running job's partial one) to ``out_dir/dataset.<fmt>``."""
    link = api.download_link(job_id, fmt)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"dataset.{link['format']}"
    with _progress(console) as progress:
        task = progress.add_task(f"Downloading {target.name}", total=link.get("bytes"))
        save_stream(link["url"], target, lambda n: progress.advance(task, n))
    return target, link
