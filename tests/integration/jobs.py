"""Jobs in the integration tests: templates, starting jobs, and reading what they made and cost.

Starting: ``start`` (a template, the example seeds and a job, through the
gateway), ``start_job`` (the two-step template), ``finished_job``, or
``publish_to`` as another system would. Reading: problem answers, the
export's rows, the ledger, the emulator's billing log, ``GET /usage``.
Waiting for any of it: ``waiting.py``.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import aio_pika
import httpx
import pyarrow.parquet as pq

from palette.common.pricing import PricingTable
from palette.common.service_tiers import rated_table
from palette.devstack.client import GatewayClient
from palette.devstack.emulator_client import EmulatorControl
from palette.devstack.stack import DevStack
from tests.examples import SEEDS, load_publishing_example

PRICING = PricingTable.load()
MICRO = "amazon.nova-micro-v1:0"
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
MISTRAL = "mistral.mistral-7b-instruct-v0:2"
NOVA_PRO = "amazon.nova-pro-v1:0"

ONE_STEP = {
    "name": "one-step",
    "steps": [{"id": "q", "model": MICRO, "prompt": "Ask about {{ product }}.", "max_tokens": 20}],
}
TWO_STEPS = {
    "name": "two-steps",
    "steps": [
        {
            "id": "question",
            "model": MICRO,
            "prompt": "Ask about {{ product }} as a {{ persona.role }}.",
            "max_tokens": 60,
        },
        {
            "id": "answer",
            "model": HAIKU,
            "system": "Support agent for {{ product }}.",
            "prompt": "Answer: {{ steps.question.output }}",
            "max_tokens": 80,
        },
    ],
}

# ------------------------------------------------------------ starting jobs


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
    api: GatewayClient,
    num_records: int = 20,
    template: dict[str, Any] | None = None,
    *,
    seeds: Path = SEEDS,
    **extra: Any,
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A template, the seeds (the example's by default) and a job: ``(template, seeds, job)``."""
    created = api.create_template(template or ONE_STEP)
    uploaded = api.upload_seeds(seeds)
    job = api.submit_job(
        **job_body(created["id"], uploaded["key"], num_records=num_records, **extra)
    )
    return created, uploaded, job


def start_job(
    api: GatewayClient, num_records: int, budget: str, fmt: str = "jsonl"
) -> dict[str, Any]:
    """A job of the two-step template on the example seeds."""
    _, _, job = start(api, num_records, TWO_STEPS, budget_usd=budget, output_format=fmt)
    return job


def finished_job(api: GatewayClient, num_records: int = 20) -> dict[str, Any]:
    """A small job, waited for until it has completed and exported."""
    _, _, job = start(api, num_records)
    final = api.wait(job["id"], timeout=90)
    assert final["status"] == "COMPLETED", final
    return final


def put_seeds(devstack: DevStack, s3: Any, owner: str) -> str:
    """The example seeds put in S3 for ``owner`` as another system would: their key."""
    key = f"seed-data/{owner}/seeds.jsonl"
    s3.put_object(Bucket=devstack.bucket, Key=key, Body=SEEDS.read_bytes())
    return key


def example_job(devstack: DevStack, s3: Any, num_records: int, budget_usd: str) -> dict[str, Any]:
    """The publishing example's ``SubmitJob`` body of a new job, its seeds put in S3."""
    owner, job_id = f"crm-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    seed_key = put_seeds(devstack, s3, owner)
    body: dict[str, Any] = load_publishing_example().submit_job(
        job_id=job_id,
        owner=owner,
        steps=json.loads(json.dumps(TWO_STEPS["steps"])),
        seed_key=seed_key,
        num_records=num_records,
        budget_usd=budget_usd,
        output_format="jsonl",
    )
    return body


@contextmanager
def model_latency(devstack: DevStack, milliseconds: int) -> Iterator[EmulatorControl]:
    """The emulator answers after ``milliseconds`` inside the block (5 ms again after it)."""
    emulator = devstack.emulator_control()
    emulator.configure(latency_ms=milliseconds)
    try:
        yield emulator
    finally:
        emulator.configure(latency_ms=5)


def command(body: bytes, mid: str, reply_to: str | None = None) -> aio_pika.Message:
    """A message as another system would publish it: JSON, persistent, with its id."""
    return aio_pika.Message(
        body,
        message_id=mid,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        reply_to=reply_to,
    )


async def publish_to(url: str, exchange: str, routing_key: str, body: bytes, mid: str) -> None:
    """Publish like another system would: plain AMQP, no Plot Palette code."""
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        target = await channel.get_exchange(exchange)
        await target.publish(command(body, mid), routing_key=routing_key, mandatory=True)


# ------------------------------------------------------------ answers, what jobs made and cost


def problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert an RFC 9457 problem with ``status`` and return its body."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail", "errors"} <= set(body)
    return body


def export_rows(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    """Every row of an exported dataset, whatever its format."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    if key.endswith(".jsonl"):
        return [json.loads(line) for line in body.decode().splitlines() if line]
    if key.endswith(".csv"):
        return list(csv.DictReader(io.StringIO(body.decode())))
    # pyarrow 26's threaded read can abort the process at interpreter exit here
    # ("terminate called without an active exception"): read on this thread.
    return pq.read_table(io.BytesIO(body), use_threads=False).to_pylist()


def parquet_schema(s3: Any, bucket: str, key: str) -> Any:
    """The Arrow schema of an exported Parquet file."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_schema(io.BytesIO(body))


def assert_ids(rows: list[dict[str, Any]], job_id: str, num_records: int) -> set[int]:
    """The record indices of an export's rows, each id once and of this job."""
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), "a record id appears twice"
    indices = {int(i.rsplit("-", 1)[1]) for i in ids}
    assert all(i.startswith(f"{job_id}-") for i in ids)
    assert indices <= set(range(num_records))
    return indices


def objects(s3: Any, bucket: str, prefix: str) -> int:
    """How many objects lie under a prefix."""
    return int(s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["KeyCount"])


def picos(value: str) -> int:
    """A USD amount as the API writes it, in picodollars."""
    return int(Decimal(value) * 10**12)


def cost(calls: list[dict[str, Any]]) -> int:
    """The exact cost of billed calls, in picodollars, each at its service tier's price.

    Prompt-cache tokens are at their prices.
    """
    return sum(
        rated_table(PRICING, c.get("service_tier", "default")).cost(
            c["model_id"],
            c["input_tokens"],
            c["output_tokens"],
            c.get("cache_read_tokens", 0),
            c.get("cache_write_tokens", 0),
        )
        for c in calls
    )


def billed_picos(emulator: EmulatorControl, job_id: str) -> tuple[int, int]:
    """(calls, exact cost) the emulator billed for a job."""
    calls = emulator.billing(job_id=job_id)
    return len(calls), cost(calls)


def billed_count(stack: DevStack, job_id: str) -> int:
    """How many calls the emulator has billed for the job so far."""
    return len(stack.emulator_control().billing(job_id=job_id))


def ledger(mongo: Any, job_id: str) -> dict[str, Any]:
    """The job's ledger document."""
    doc = mongo["ledgers"].find_one({"_id": job_id})
    assert doc is not None, f"no ledger for {job_id}"
    return dict(doc)


def assert_ledger_matches_billing(devstack: DevStack, mongo: Any, job_id: str) -> dict[str, Any]:
    """The ended job's ledger, its spend equal to what the emulator billed and no lease open."""
    calls, cost_billed = billed_picos(devstack.emulator_control(), job_id)
    doc = ledger(mongo, job_id)
    assert doc["spent"] == cost_billed, f"ledger {doc['spent']} != billed {cost_billed}"
    assert doc["calls"] == calls
    assert doc["pending"] == {}, "every lease is closed once the job has ended"
    assert doc["available"] + doc["spent"] == doc["budget"]
    return doc


def usage(api: GatewayClient, **params: str) -> dict[str, Any]:
    """The caller's ``GET /usage``."""
    response = api.http.get("/usage", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def settled_usage(api: GatewayClient, previews: int) -> dict[str, Any] | None:
    """The usage by kind once accounting has settled ``previews`` previews and holds nothing."""
    found = usage(api, group_by="kind")
    rows = {row["kind"]: row for row in found["rows"]}
    done = rows.get("preview", {}).get("items") == previews
    return found if done and found["preview_reserved_usd"] == "0" else None
