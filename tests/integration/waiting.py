"""Waiting for a positive signal: one polling helper, and the waits on jobs built on it.

Every test that waits for something the system does in the background (a
status reached, a count grown, an object gone) waits here, never with a
fixed sleep. ``wait_until`` polls a check until it returns something truthy
and returns that; past its timeout it fails with an ``AssertionError`` naming
what it waited for.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from palette.common.messages import JobStatus
from palette.devstack.client import GatewayClient
from palette.devstack.stack import DevStack
from tests.integration.jobs import billed_count, objects, settled_usage

T = TypeVar("T")

What = str | Callable[[], str]
"""What a wait is for, e.g. ``"job 1f2e to end"``; a callable is asked only on a timeout."""

FINAL = {status.value for status in JobStatus if status.is_final}


def _timed_out(what: What, timeout: float) -> AssertionError:
    named = what() if callable(what) else what
    return AssertionError(f"timed out after {timeout:g}s waiting for {named}")


def wait_until(
    check: Callable[[], T], *, what: What, timeout: float = 30.0, interval: float = 0.2
) -> T:
    """Call ``check`` every ``interval`` seconds until it returns something truthy; that value.

    A check may assert, to fail at once on a state that cannot lead anywhere.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise _timed_out(what, timeout)
        time.sleep(interval)


async def wait_until_async(
    check: Callable[[], Awaitable[T] | T],
    *,
    what: What,
    timeout: float = 30.0,
    interval: float = 0.2,
) -> T:
    """``wait_until`` inside an event loop: ``check`` may be a coroutine function."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise _timed_out(what, timeout)
        await asyncio.sleep(interval)


# ------------------------------------------------------------------ jobs


def wait_job_ended(mongo: Any, job_id: str, timeout: float = 120.0) -> dict[str, Any]:
    """The job document once the job is final and its export (if it has one) is settled.

    A failed job has none to wait for; any other final job has its export
    written (``DONE``) or given up (``FAILED``).
    """

    def ended() -> dict[str, Any] | None:
        job = mongo["jobs"].find_one({"_id": job_id})
        if job is None or job["status"] not in FINAL:
            return None
        export = job.get("export") or {}
        settled = job["status"] == "FAILED" or export.get("status") in ("DONE", "FAILED")
        return dict(job) if settled else None

    def state() -> str:
        job = mongo["jobs"].find_one({"_id": job_id}) or {}
        brief = {k: job.get(k) for k in ("status", "export", "slots", "error", "records_done")}
        unfinished = {
            doc["_id"]: (doc["status"], doc.get("lease_id"))
            for doc in mongo["partitions"].find({"job_id": job_id, "status": {"$ne": "DONE"}})
        }
        return f"job {job_id} to end: {brief} {unfinished}"

    return wait_until(ended, what=state, timeout=timeout, interval=0.2)


def wait_records_done(
    api: GatewayClient | Any, job_id: str, at_least: int, timeout: float = 60.0
) -> dict[str, Any]:
    """The job (as the API shows it) once ``at_least`` of its records are done."""

    def done() -> dict[str, Any] | None:
        job: dict[str, Any] = api.job(job_id)
        return job if job["records_done"] >= at_least else None

    return wait_until(
        done, what=f"job {job_id} to have {at_least} records done", timeout=timeout, interval=0.1
    )


def wait_leases_closed(mongo: Any, job_id: str, timeout: float) -> dict[str, Any]:
    """The job's ledger once no lease is out (every reservation settled or returned)."""

    def closed() -> dict[str, Any] | None:
        doc = mongo["ledgers"].find_one({"_id": job_id})
        return dict(doc) if doc is not None and not doc.get("pending") else None

    return wait_until(
        closed,
        what=lambda: (
            f"the leases of {job_id} to close: {mongo['ledgers'].find_one({'_id': job_id})}"
        ),
        timeout=timeout,
    )


def wait_billed(stack: DevStack, job_id: str, at_least: int, timeout: float = 60.0) -> int:
    """Wait until the emulator billed ``at_least`` calls for the job; the count."""
    return wait_until(
        lambda: (seen := billed_count(stack, job_id)) >= at_least and seen,
        what=f"{at_least} calls billed for job {job_id}",
        timeout=timeout,
        interval=0.05,
    )


def wait_usage_settled(api: GatewayClient, previews: int, timeout: float = 60.0) -> dict[str, Any]:
    """The caller's usage by kind once accounting has settled ``previews`` previews."""
    return wait_until(
        lambda: settled_usage(api, previews),
        what=f"accounting to settle {previews} previews",
        timeout=timeout,
    )


def wait_job_deleted(api: GatewayClient, job_id: str, timeout: float = 30.0) -> None:
    """Wait until the API answers 404 for the job."""
    wait_until(
        lambda: api.http.get(f"/jobs/{job_id}").status_code == 404,
        what=f"job {job_id} to be deleted",
        timeout=timeout,
    )


def wait_job_objects_gone(s3: Any, bucket: str, job_id: str, timeout: float = 30.0) -> None:
    """Wait until no S3 object of the job (parts, export, snapshots) is left."""
    prefix = f"jobs/{job_id}/"
    wait_until(
        lambda: objects(s3, bucket, prefix) == 0,
        what=f"the objects under {prefix} to be deleted",
        timeout=timeout,
    )


def wait_job_purged(
    api: GatewayClient, mongo: Any, s3: Any, bucket: str, job_id: str, timeout: float = 30.0
) -> None:
    """Wait until a deleted job is gone from the API, S3 and accounting's ledgers."""
    wait_job_deleted(api, job_id, timeout)
    wait_job_objects_gone(s3, bucket, job_id, timeout)
    wait_until(
        lambda: mongo["ledgers"].find_one({"_id": job_id}) is None,
        what=f"the ledger of job {job_id} to be deleted",
        timeout=timeout,
    )
