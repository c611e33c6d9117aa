"""Prompt caching on the real stack: cache points sent, cache tokens billed and settled exactly.

A one-step template whose system prompt and static prompt prefix are long
enough to cache (Nova Micro's minimum is 1,000 tokens) and differ per test run
(so no earlier job warmed the emulator's cache): the first billed call writes
the prefix, every later call reads it, and the ledger, priced from the pricing
table's cache prices, equals the billing log to the picodollar.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from palette.common.keys import parts_prefix
from palette.devstack.client import GatewayClient
from palette.devstack.stack import DevStack
from palette.generator.usage import UsageTally
from tests.integration.jobs import (
    MICRO,
    PRICING,
    assert_ledger_matches_billing,
    billed_picos,
    problem,
    start,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

MISTRAL = "mistral.mistral-7b-instruct-v0:2"


def cached_template(marker: str) -> dict[str, Any]:
    """A template whose system prompt and prompt prefix (about 1,400 tokens) repeat per record."""
    rules = " ".join(f"rule{n:04d}" for n in range(900))  # 900 words of 8 bytes: 1,800 tokens
    return {
        "name": "cached",
        "steps": [
            {
                "id": "answer",
                "model": MICRO,
                "system": f"Run {marker}. You follow these house rules: {rules}",
                "prompt": f"Context for run {marker}: {rules}\nQuestion: {{{{ product }}}}?",
                "max_tokens": 16,
                "cache_prompt": True,
            }
        ],
    }


def test_a_cached_job_bills_cache_reads_from_the_second_record_on(
    api: GatewayClient, devstack: DevStack, mongo: Any
) -> None:
    n = 12
    _, _, job = start(api, n, cached_template(uuid.uuid4().hex))
    final = api.wait(job["id"], timeout=180)
    assert final["status"] == "COMPLETED", final
    billed = sorted(devstack.emulator_control().billing(job_id=job["id"]), key=lambda c: c["at"])
    assert len(billed) == n
    first, rest = billed[0], billed[1:]
    assert first["cache_write_tokens"] > 1000
    assert first["cache_read_tokens"] == 0
    for call in rest:
        assert call["cache_read_tokens"] == first["cache_write_tokens"], call
        assert call["cache_write_tokens"] == 0
    doc = assert_ledger_matches_billing(devstack, mongo, job["id"])
    assert doc["cache_read_tokens"] == sum(c["cache_read_tokens"] for c in billed)
    assert doc["cache_write_tokens"] == first["cache_write_tokens"]
    price = PRICING.price(MICRO)
    assert price.cache_read_picos is not None
    assert price.cache_read_picos < price.input_picos
    uncached = sum(
        PRICING.cost(
            MICRO,
            c["input_tokens"] + c["cache_read_tokens"] + c["cache_write_tokens"],
            c["output_tokens"],
        )
        for c in billed
    )
    assert doc["spent"] < uncached, "the cache reads cost less than the same tokens uncached"
    board = api.http.get(f"/jobs/{job['id']}/dashboard").json()
    assert board["tokens"]["cache_read"] == doc["cache_read_tokens"]
    assert board["tokens"]["cache_write"] == doc["cache_write_tokens"]
    step = board["cost_by_step"][0]
    assert step["cache_read_tokens"] == doc["cache_read_tokens"]


def parts_usage(s3: Any, bucket: str, job_id: str) -> UsageTally:
    """The usage every part of the job announced (its ``RecordsGenerated``), summed."""
    total = UsageTally()
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=parts_prefix(job_id)
    ):
        for item in page.get("Contents", []):
            metadata = s3.head_object(Bucket=bucket, Key=item["Key"])["Metadata"]
            total.merge(UsageTally.decode(metadata["usage"]))
    return total


def test_each_part_reports_its_cache_tokens_so_no_crash_point_loses_them(
    api: GatewayClient, devstack: DevStack, mongo: Any, s3: Any
) -> None:
    """The parts alone (re-announced as they are after any crash) pay every billed token.

    A partition's end event is not needed for the money: a generator killed
    after its last part, or an attempt that re-announces the parts of a lost
    one, settles exactly what the emulator billed, cache reads and writes included.
    """
    n = 12
    _, _, job = start(api, n, cached_template(uuid.uuid4().hex), partition_size=4)
    final = api.wait(job["id"], timeout=180)
    assert final["status"] == "COMPLETED", final
    billed = devstack.emulator_control().billing(job_id=job["id"])
    assert sum(c["cache_read_tokens"] for c in billed) > 0
    announced = parts_usage(s3, devstack.bucket, job["id"])
    rows = announced.to_step_usages()
    assert sum(u.cache_read_tokens for u in rows) == sum(c["cache_read_tokens"] for c in billed)
    assert sum(u.cache_write_tokens for u in rows) == sum(c["cache_write_tokens"] for c in billed)
    assert announced.calls == len(billed) == n
    assert announced.cost(PRICING) == billed_picos(devstack.emulator_control(), job["id"])[1]
    assert_ledger_matches_billing(devstack, mongo, job["id"])


def test_cache_prompt_on_a_model_without_cache_prices_is_refused(api: GatewayClient) -> None:
    template = cached_template("x")
    template["steps"][0]["model"] = MISTRAL
    answer = problem(api.http.post("/templates", json=template), 422)
    assert answer["errors"][0]["field"] == "steps[0].cache_prompt"
    assert "no prompt caching" in answer["errors"][0]["problem"]
