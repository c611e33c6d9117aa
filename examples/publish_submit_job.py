r"""Publish a ``SubmitJob`` command to Plot Palette from another system, with plain AMQP.

Nothing here imports Plot Palette: only aio-pika (any AMQP 0-9-1 client does the
same). docs/publishing-commands.md explains each choice; the integration test
tests/integration/test_publishing_example.py runs this very code against the
dev stack and waits for the job to complete.

Usage (the seed file must already be in the bucket, under ``seed-data/<owner>/``):

    python examples/publish_submit_job.py --url amqp://guest:guest@127.0.0.1:5672/ \\
        --owner crm-export --seed-key seed-data/crm-export/seeds.jsonl \\
        --template examples/template.json --records 100 --budget-usd 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aio_pika

EXCHANGE = "palette.commands"  # durable, direct; Plot Palette declares it
ROUTING_KEY = "job.submit"  # bound to the scheduler's queue scheduler.submit-job


def submit_job(
    *,
    job_id: str,
    owner: str,
    steps: list[dict[str, Any]],
    seed_key: str,
    num_records: int,
    budget_usd: str,
    output_format: str = "jsonl",
    message_id: str | None = None,
) -> dict[str, Any]:
    """The JSON body of a ``SubmitJob`` (fields of ``palette.common.messages.SubmitJob``)."""
    return {
        "message_id": message_id or f"submit-{job_id}",  # the idempotency key
        "occurred_at": datetime.now(UTC).isoformat(),
        "version": 1,
        "job_id": job_id,  # the job's id: submitting it again creates nothing new
        "owner": owner,
        "template": {"steps": steps},
        "seed_key": seed_key,  # an S3 key in Plot Palette's bucket
        "num_records": num_records,
        "budget_usd": budget_usd,  # a decimal string: the hard cap, in USD
        "output_format": output_format,  # jsonl, parquet or csv
    }


async def publish_submit_job(
    url: str, body: dict[str, Any], *, confirm_seconds: float = 10.0
) -> None:
    """Publish ``body`` as SubmitJob: persistent, mandatory, confirmed by the broker.

    Returns once the broker has the message on disk in a queue. Raises
    ``aio_pika.exceptions.DeliveryError`` when the broker refuses it, or its
    subclass ``PublishError`` when no queue takes it (returned as NO_ROUTE);
    ``asyncio.TimeoutError`` when no confirm comes in ``confirm_seconds``.
    Publishing the same body again is safe: the message id (and the job id)
    make it a no-op.
    """
    connection = await aio_pika.connect(url)
    async with connection:
        # Confirms: publish() waits for the broker's ack. on_return_raises: a
        # mandatory message no queue took raises instead of vanishing.
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(EXCHANGE, ensure=True)
        await exchange.publish(
            aio_pika.Message(
                json.dumps(body).encode(),
                message_id=body["message_id"],
                type="SubmitJob",
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=ROUTING_KEY,
            mandatory=True,
            timeout=confirm_seconds,
        )


def main() -> None:
    """Publish one SubmitJob built from the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--owner", required=True)
    parser.add_argument("--seed-key", required=True)
    parser.add_argument("--template", type=Path, required=True, help="JSON with a 'steps' list")
    parser.add_argument("--records", type=int, required=True)
    parser.add_argument("--budget-usd", required=True)
    parser.add_argument("--format", default="jsonl", choices=["jsonl", "parquet", "csv"])
    parser.add_argument("--job-id", default=None, help="default: a new random id")
    args = parser.parse_args()
    body = submit_job(
        job_id=args.job_id or uuid.uuid4().hex,
        owner=args.owner,
        steps=json.loads(args.template.read_text(encoding="utf-8"))["steps"],
        seed_key=args.seed_key,
        num_records=args.records,
        budget_usd=args.budget_usd,
        output_format=args.format,
    )
    asyncio.run(publish_submit_job(args.url, body))
    print(f"published SubmitJob {body['job_id']} (message id {body['message_id']})")


if __name__ == "__main__":
    main()
