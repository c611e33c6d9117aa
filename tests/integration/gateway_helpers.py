"""Helpers of the gateway tests: templates, seeds, small jobs and problem answers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from palette.devstack.client import GatewayClient
from palette.devstack.stack import DevStack
from tests.integration.jobs import MICRO, TWO_STEPS

ONE_STEP = {
    "name": "one-step",
    "steps": [{"id": "q", "model": MICRO, "prompt": "Ask about {{ product }}.", "max_tokens": 20}],
}
SEEDS = Path(__file__).resolve().parents[2] / "examples" / "seeds.jsonl"


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert an RFC 9457 problem with ``status`` and return its body."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "errors"} <= set(body)
    return body


def job_body(template_id: str, seed_key: str, **changes: Any) -> dict[str, Any]:
    """A valid ``POST /jobs`` body."""
    body: dict[str, Any] = {
        "template_id": template_id,
        "seed_key": seed_key,
        "num_records": 20,
        "budget_usd": "1",
        "output_format": "jsonl",
    }
    body.update(changes)
    return body


def start(
    api: GatewayClient, num_records: int = 20, template: dict[str, Any] | None = None, **extra: Any
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A template, the example seeds and a job: ``(template, seeds, job)``."""
    created = api.create_template(template or ONE_STEP)
    seeds = api.upload_seeds(SEEDS)
    job = api.submit_job(**job_body(created["id"], seeds["key"], num_records=num_records, **extra))
    return created, seeds, job


def finished_job(api: GatewayClient, num_records: int = 20) -> dict[str, Any]:
    """A small job, waited for until it has completed and exported."""
    _, _, job = start(api, num_records)
    final = api.wait(job["id"], timeout=90)
    assert final["status"] == "COMPLETED", final
    return final


@contextmanager
def model_latency(devstack: DevStack, milliseconds: int) -> Iterator[None]:
    """The emulator answers after ``milliseconds`` inside the block (5 ms again after it)."""
    emulator = devstack.emulator_control()
    emulator.configure(latency_ms=milliseconds)
    try:
        yield
    finally:
        emulator.configure(latency_ms=5)


def wait_until(check: Any, timeout: float = 30.0, interval: float = 0.2) -> Any:
    """Poll ``check()`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(interval)


__all__ = ["ONE_STEP", "SEEDS", "TWO_STEPS", "finished_job", "job_body", "problem", "start"]
