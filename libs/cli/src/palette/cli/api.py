"""A client of the gateway's REST API and its SSE stream: all the CLI knows of the system.

Every error answer becomes an ``ApiError`` carrying the API's problem details;
a gateway that cannot be reached becomes an ``ApiError`` with status 0 that
says where it looked.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import IO, Any

import httpx
from httpx_sse import connect_sse

from palette.cli.config import Connection

FINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "BUDGET_EXCEEDED"})
ACTIVE = frozenset({"QUEUED", "RUNNING"})
USAGE_GROUPS = ("day", "model", "kind", "template")
"""What ``GET /usage`` groups by."""
CANCEL_REQUESTED = "CANCEL_REQUESTED"
"""``POST /jobs/{id}/cancel``'s outcome when the job was queued or running."""


class ApiError(RuntimeError):
    """An error answer (problem details), or no answer at all (``status`` 0)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        super().__init__(self.text())

    @classmethod
    def of(cls, response: httpx.Response) -> ApiError:
        """The error of an answer with a 4xx/5xx status."""
        try:
            problem = response.json()
        except ValueError:
            problem = {"detail": response.text.strip() or response.reason_phrase}
        if not isinstance(problem, dict):
            problem = {"detail": str(problem)}
        return cls(response.status_code, problem)

    def names_field(self, field: str) -> bool:
        """Whether one of the problem's errors is about ``field``."""
        errors = self.problem.get("errors") or []
        return any(isinstance(e, dict) and e.get("field") == field for e in errors)

    def text(self) -> str:
        """The problem as a user reads it: status, title, detail, one line per field error."""
        if self.status == 0:
            return str(self.problem.get("detail"))
        title = self.problem.get("title") or ""
        detail = self.problem.get("detail") or ""
        lines = [f"HTTP {self.status} {title}".rstrip() + (f": {detail}" if detail else "")]
        for error in self.problem.get("errors") or []:
            if isinstance(error, dict):
                where = error.get("field", "?")
                extra = {k: v for k, v in error.items() if k not in {"field", "problem"}}
                more = f" {json.dumps(extra)}" if extra else ""
                lines.append(f"  {where}: {error.get('problem')}{more}")
        return "\n".join(lines)


class Api:
    """Calls one gateway with one bearer token."""

    def __init__(self, connection: Connection, timeout: float = 60.0) -> None:
        self.url = connection.url
        self.http = httpx.Client(
            base_url=connection.url,
            headers={"Authorization": f"Bearer {connection.token}"},
            timeout=timeout,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request; an error answer raises ``ApiError``."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from None
        if response.status_code >= 400:
            raise ApiError.of(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request's JSON answer (None for an empty body)."""
        response = self.call(method, path, **kwargs)
        return response.json() if response.content else None

    def unreachable(self, exc: Exception) -> ApiError:
        """The error for a gateway that did not answer."""
        return ApiError(
            0,
            {"detail": f"cannot reach the gateway at {self.url} ({exc}); is `palette up` running?"},
        )

    # -- templates -------------------------------------------------------------------

    def create_template(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /templates``."""
        return dict(self.json("POST", "/templates", json=body))

    def update_template(self, template_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """``PUT /templates/{id}``: a new version."""
        return dict(self.json("PUT", f"/templates/{template_id}", json=body))

    def templates(self, limit: int = 100) -> Iterator[dict[str, Any]]:
        """``GET /templates``, every page."""
        yield from self._pages("/templates", {"limit": limit})

    def template(self, template_id: str, version: int | None = None) -> dict[str, Any]:
        """``GET /templates/{id}``."""
        params = {"version": version} if version else {}
        return dict(self.json("GET", f"/templates/{template_id}", params=params))

    def template_versions(self, template_id: str) -> dict[str, Any]:
        """``GET /templates/{id}/versions``."""
        return dict(self.json("GET", f"/templates/{template_id}/versions"))

    def fork_template(
        self, template_id: str, name: str | None = None, version: int | None = None
    ) -> dict[str, Any]:
        """``POST /templates/{id}/fork``."""
        params = {"version": version} if version else {}
        body = {"name": name} if name else None
        return dict(self.json("POST", f"/templates/{template_id}/fork", params=params, json=body))

    def preview(
        self,
        template_id: str,
        seed: dict[str, Any],
        *,
        run: bool = False,
        version: int | None = None,
        num_records: int | None = None,
    ) -> dict[str, Any]:
        """``POST /templates/{id}/preview`` (its estimate is for a job of ``num_records``)."""
        params: dict[str, Any] = {"run": str(run).lower()}
        if version:
            params["version"] = version
        body: dict[str, Any] = {"seed": seed}
        if num_records is not None:
            body["num_records"] = num_records
        return dict(
            self.json("POST", f"/templates/{template_id}/preview", params=params, json=body)
        )

    def export_template(self, template_id: str, version: int | None = None) -> str:
        """``GET /templates/{id}/yaml``."""
        params = {"version": version} if version else {}
        return self.call("GET", f"/templates/{template_id}/yaml", params=params).text

    def import_template(self, text: str) -> dict[str, Any]:
        """``POST /templates/yaml``: a template from its YAML."""
        headers = {"Content-Type": "application/yaml"}
        return dict(self.json("POST", "/templates/yaml", content=text.encode(), headers=headers))

    # -- seed data -------------------------------------------------------------------

    def upload_seeds(self, body: IO[bytes] | Iterator[bytes], filename: str) -> dict[str, Any]:
        """``POST /seed-data?filename=``: the file as the request body."""
        return dict(self.json("POST", "/seed-data", params={"filename": filename}, content=body))

    def seed_upload_ticket(self, filename: str, size: int) -> dict[str, Any]:
        """``POST /seed-data/uploads``: a presigned PUT."""
        body = {"filename": filename, "bytes": size}
        return dict(self.json("POST", "/seed-data/uploads", json=body))

    def validate_seeds(
        self, key: str, template_id: str, version: int | None = None
    ) -> dict[str, Any]:
        """``POST /seed-data/validate``."""
        body: dict[str, Any] = {"key": key, "template_id": template_id}
        if version:
            body["template_version"] = version
        return dict(self.json("POST", "/seed-data/validate", json=body))

    # -- jobs ------------------------------------------------------------------------

    def create_job(self, body: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        """``POST /jobs`` (a retry with the same key returns the same job)."""
        headers = {"Idempotency-Key": idempotency_key}
        return dict(self.json("POST", "/jobs", json=body, headers=headers))

    def jobs(self, statuses: list[str] | None = None, limit: int = 100) -> Iterator[dict[str, Any]]:
        """``GET /jobs``, newest first, every page."""
        yield from self._pages("/jobs", {"limit": limit, "status": statuses or []})

    def job(self, job_id: str) -> dict[str, Any]:
        """``GET /jobs/{id}``."""
        return dict(self.json("GET", f"/jobs/{job_id}"))

    def dashboard(self, job_id: str) -> dict[str, Any]:
        """``GET /jobs/{id}/dashboard``."""
        return dict(self.json("GET", f"/jobs/{job_id}/dashboard"))

    def cancel(self, job_id: str) -> dict[str, Any]:
        """``POST /jobs/{id}/cancel``: ``outcome`` (CANCEL_REQUESTED or ALREADY_ENDED), ``job``.

        Never deletes anything; a job that has ended is left as it is.
        """
        return dict(self.json("POST", f"/jobs/{job_id}/cancel"))

    def usage(self, start: date, end: date, group_by: str) -> dict[str, Any]:
        """``GET /usage``: the caller's spend on jobs and previews from ``start`` to ``end``."""
        params = {"from": start.isoformat(), "to": end.isoformat(), "group_by": group_by}
        return dict(self.json("GET", "/usage", params=params))

    def delete_job(self, job_id: str) -> dict[str, Any]:
        """``DELETE /jobs/{id}``: cancels a running job, deletes a finished one."""
        return dict(self.json("DELETE", f"/jobs/{job_id}"))

    def download_link(self, job_id: str, fmt: str | None = None) -> dict[str, Any]:
        """``GET /jobs/{id}/download``: a presigned URL of the dataset."""
        params = {"format": fmt} if fmt else {}
        return dict(self.json("GET", f"/jobs/{job_id}/download", params=params))

    def events(self, job_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """``GET /jobs/{id}/events``: (event, data) until the stream ends."""
        timeout = httpx.Timeout(self.http.timeout.connect, read=None)
        try:
            with connect_sse(self.http, "GET", f"/jobs/{job_id}/events", timeout=timeout) as source:
                if source.response.status_code >= 400:
                    source.response.read()
                    raise ApiError.of(source.response)
                for event in source.iter_sse():
                    if event.data:
                        yield event.event, json.loads(event.data)
        except httpx.TransportError as exc:
            raise self.unreachable(exc) from None

    # -- helpers ---------------------------------------------------------------------

    def _pages(self, path: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        cursor = None
        while True:
            page = self.json(
                "GET", path, params={**params, **({"cursor": cursor} if cursor else {})}
            )
            yield from page["items"]
            cursor = page.get("next_cursor")
            if not cursor:
                return


def save_stream(url: str, target: Path, on_chunk: Any = None) -> int:
    """GET ``url`` (a presigned URL: no bearer token) into ``target``; the bytes written."""
    written = 0
    partial = target.with_name(target.name + ".part")
    with httpx.stream("GET", url, timeout=httpx.Timeout(30.0, read=300.0)) as response:
        if response.status_code >= 400:
            response.read()
            raise ApiError.of(response)
        with partial.open("wb") as file:
            for chunk in response.iter_bytes(1024 * 1024):
                file.write(chunk)
                written += len(chunk)
                if on_chunk is not None:
                    on_chunk(len(chunk))
    partial.replace(target)
    return written
