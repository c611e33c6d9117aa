"""Helpers of the pipeline tests: reading exports, the ledger and the billing log."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import aio_pika
import pyarrow.parquet as pq

from palette.common.pricing import PricingTable
from palette.devstack.emulator_client import EmulatorControl

PRICING = PricingTable.load()
MICRO = "amazon.nova-micro-v1:0"
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
MISTRAL = "mistral.mistral-7b-instruct-v0:2"

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


def billed_picos(emulator: EmulatorControl, job_id: str) -> tuple[int, int]:
    """(calls, exact cost) the emulator billed for a job."""
    calls = emulator.billing(job_id=job_id)
    cost = sum(PRICING.cost(c["model_id"], c["input_tokens"], c["output_tokens"]) for c in calls)
    return len(calls), cost


def ledger(mongo: Any, job_id: str) -> dict[str, Any]:
    """The job's ledger document."""
    doc = mongo["ledgers"].find_one({"_id": job_id})
    assert doc is not None, f"no ledger for {job_id}"
    return dict(doc)


def parquet_schema(s3: Any, bucket: str, key: str) -> Any:
    """The Arrow schema of an exported Parquet file."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return pq.read_schema(io.BytesIO(body))


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
