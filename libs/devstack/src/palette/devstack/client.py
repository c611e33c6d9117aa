"""A small REST client of the gateway, shared by the demo and the tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

FINAL = {"COMPLETED", "FAILED", "CANCELLED", "BUDGET_EXCEEDED"}


class GatewayClient:
    """Calls the gateway as one user (a bearer token)."""

    def __init__(self, base_url: str, token: str, timeout: float = 30.0) -> None:
        self.http = httpx.Client(
            base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )

    def close(self) -> None:
        """Close the connection pool."""
        self.http.close()

    def create_template(self, body: dict[str, Any]) -> dict[str, Any]:
        """``POST /templates``; raises on an error answer."""
        return self._ok(self.http.post("/templates", json=body))

    def upload_seeds(self, path: Path | str, name: str | None = None) -> dict[str, Any]:
        """``POST /seed-data`` with the file as the body."""
        file = Path(path)
        with file.open("rb") as body:
            response = self.http.post(
                "/seed-data", params={"filename": name or file.name}, content=body
            )
        return self._ok(response)

    def submit_job(self, **body: Any) -> dict[str, Any]:
        """``POST /jobs``."""
        return self._ok(self.http.post("/jobs", json=body))

    def job(self, job_id: str) -> dict[str, Any]:
        """``GET /jobs/{id}``."""
        return self._ok(self.http.get(f"/jobs/{job_id}"))

    def dashboard(self, job_id: str) -> dict[str, Any]:
        """``GET /jobs/{id}/dashboard``: progress, money, tokens and retries, timing."""
        return self._ok(self.http.get(f"/jobs/{job_id}/dashboard"))

    def cancel(self, job_id: str) -> dict[str, Any]:
        """``POST /jobs/{id}/cancel``: stop a queued or running job; never deletes anything."""
        return self._ok(self.http.post(f"/jobs/{job_id}/cancel"))

    def delete(self, job_id: str, if_match: str | None = None) -> dict[str, Any]:
        """``DELETE /jobs/{id}``: cancel a running job, delete a finished one.

        ``if_match`` (a job's ``etag``) makes it act only on the job in that state.
        """
        headers = {"If-Match": if_match} if if_match is not None else {}
        return self._ok(self.http.delete(f"/jobs/{job_id}", headers=headers))

    def wait(
        self,
        job_id: str,
        timeout: float = 120.0,
        *,
        exported: bool = True,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        interval: float = 0.2,
    ) -> dict[str, Any]:
        """Poll a job until it is final (and, by default, its export is written)."""
        deadline = time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if on_progress is not None:
                on_progress(job)
            done = job["status"] in FINAL
            if done and (not exported or job.get("export") or job["status"] == "FAILED"):
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']} after {timeout}s: {job}")
            time.sleep(interval)

    @staticmethod
    def _ok(response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 400:
            raise GatewayError(response)
        result: dict[str, Any] = response.json()
        return result


class GatewayError(RuntimeError):
    """An error answer of the gateway (problem details)."""

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        try:
            self.problem: dict[str, Any] = response.json()
        except ValueError:
            self.problem = {"detail": response.text}
        super().__init__(f"HTTP {self.status}: {self.problem}")
