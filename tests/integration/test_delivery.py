"""Delivery guarantees on the real broker: duplicates have one effect, poison is dead-lettered."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from palette.common.messages import GeneratePartition, RecordsGenerated, StepUsage
from palette.common.templates import TemplateSpec
from palette.common.topology import ERROR_HEADER, ROUTES, Queues
from palette.devstack.client import GatewayClient
from palette.devstack.services import ServiceGroup
from palette.devstack.stack import DevStack
from tests.integration.deliveries import (
    consumed,
    drain,
    mark,
    wait_consumed,
    wait_dead_lettered,
    wait_drained,
)
from tests.integration.jobs import (
    TWO_STEPS,
    billed_picos,
    export_rows,
    ledger,
    model_latency,
    publish_to,
    start_job,
)
from tests.integration.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


class TestDuplicateDelivery:
    def test_records_generated_delivered_twice_is_settled_and_counted_once(
        self,
        api: GatewayClient,
        services: ServiceGroup,
        devstack: DevStack,
        mongo: Any,
        s3: Any,
    ) -> None:
        job = start_job(api, 30, "2")
        final = api.wait(job["id"])
        assert final["status"] == "COMPLETED"
        before = ledger(mongo, job["id"])
        parts = s3.list_objects_v2(Bucket=devstack.bucket, Prefix=f"jobs/{job['id']}/parts/")
        key = parts["Contents"][0]["Key"]
        meta = s3.head_object(Bucket=devstack.bucket, Key=key)["Metadata"]
        usage = tuple(
            StepUsage(step_id=s, model_id=m, calls=c, input_tokens=i, output_tokens=o)
            for s, m, c, i, o in json.loads(meta["usage"])
        )
        again = RecordsGenerated(
            message_id=meta["message"],
            job_id=job["id"],
            partition=0,
            lease_id=meta["lease"],
            part_key=key,
            records=int(meta["records"]),
            usage=usage,
        )
        exchange, routing_key = ROUTES[RecordsGenerated]
        since = {
            queue: mark([service])
            for queue, service in (
                (Queues.ACC_RECORDS.name, services.accounting),
                (Queues.SCHED_RECORDS.name, services.scheduler),
            )
        }
        for _ in range(2):
            asyncio.run(
                publish_to(
                    devstack.rabbitmq_url,
                    exchange.name,
                    routing_key,
                    again.model_dump_json().encode(),
                    again.message_id,
                )
            )
        # Both consumers have handled both copies: only now can "no effect" be seen.
        for queue, logs in since.items():
            wait_consumed(logs, queue, again.message_id, times=2)
        after = ledger(mongo, job["id"])
        assert after["spent"] == before["spent"]
        assert after["calls"] == before["calls"]
        assert api.job(job["id"])["records_done"] == 30


class TestPoisonMessages:
    @pytest.mark.parametrize("spec", Queues.all(), ids=lambda s: s.name)
    def test_poison_reaches_the_dead_letter_queue_with_its_reason(
        self, spec: Any, devstack: DevStack, services: Any
    ) -> None:
        url = devstack.rabbitmq_url
        # An event route reaches every queue bound to it: each must dead-letter it.
        bound = [
            q
            for q in Queues.all()
            if (q.exchange, q.routing_key) == (spec.exchange, spec.routing_key)
        ]
        for queue in bound:
            asyncio.run(drain(url, queue.dead_letter_queue))
        bodies = [b"this is not json", b'{"job_id": 12, "x": []}', b"[1, 2, 3]"]
        for i, body in enumerate(bodies):
            asyncio.run(publish_to(url, spec.exchange.name, spec.routing_key, body, f"poison-{i}"))
        dead_letters = wait_dead_lettered(url, bound, len(bodies), timeout=30)
        for queue in bound:
            dead = dead_letters[queue.name]
            assert sorted(m.body for m in dead) == sorted(bodies)
            for message in dead:
                assert message.headers[ERROR_HEADER].startswith("invalid message")
                assert message.headers["x-palette-queue"] == queue.name

    def test_consumers_go_on_after_poison(
        self, devstack: DevStack, services: Any, api: GatewayClient
    ) -> None:
        url = devstack.rabbitmq_url
        for spec in Queues.all():
            asyncio.run(drain(url, spec.dead_letter_queue))
        # One poison message per route; an event route reaches every queue bound to it.
        routes = {(spec.exchange.name, spec.routing_key) for spec in Queues.all()}
        for exchange, routing_key in routes:
            asyncio.run(publish_to(url, exchange, routing_key, b"{}", "poison"))
        job = start_job(api, 20, "1")
        assert api.wait(job["id"], timeout=60)["status"] == "COMPLETED"
        for spec in Queues.all():
            dead = asyncio.run(drain(url, spec.dead_letter_queue))
            assert len(dead) == 1, (spec.name, [(m.body, m.headers) for m in dead])


class TestGatewayBadInput:
    def test_each_bad_request_names_the_field_and_creates_nothing(
        self, api: GatewayClient, mongo: Any, examples: Any, user: str, tmp_path: Any
    ) -> None:
        template = api.create_template(TWO_STEPS)
        seeds = api.upload_seeds(examples / "seeds.jsonl")
        good = {
            "template_id": template["id"],
            "seed_key": seeds["key"],
            "num_records": 5,
            "budget_usd": "1",
            "output_format": "jsonl",
        }
        bad_jobs = {
            "num_records": {**good, "num_records": 0},
            "num_records ": {**good, "num_records": 1_000_001},
            "budget_usd": {**good, "budget_usd": "0"},
            "budget_usd ": {**good, "budget_usd": "-3"},
            "budget_usd  ": {**good, "budget_usd": "1000000"},
            "seed_key": {**good, "seed_key": f"seed-data/{user}/missing.jsonl"},
            "template_id": {**good, "template_id": "nope"},
        }
        for field, body in bad_jobs.items():
            response = api.http.post("/jobs", json=body)
            assert 400 <= response.status_code < 500, (field, response.text)
            problem = response.json()
            assert response.headers["content-type"].startswith("application/problem+json")
            assert any(e["field"] == field.strip() for e in problem["errors"]), (field, problem)

        lacking = api.create_template(
            {
                "name": "lacks",
                "steps": [
                    {"id": "a", "model": TWO_STEPS["steps"][0]["model"], "prompt": "{{ colour }}"}
                ],
            }
        )
        response = api.http.post("/jobs", json={**good, "template_id": lacking["id"]})
        assert response.status_code == 422
        assert "colour" in response.text

        bad_templates = [
            (
                {
                    "name": "x",
                    "steps": [
                        {"id": "a", "model": "amazon.nova-micro-v1:0", "prompt": "{{ broken"}
                    ],
                },
                "steps[0].prompt",
            ),
            (
                {
                    "name": "x",
                    "steps": [
                        {"id": "a", "model": "amazon.nova-micro-v1:0", "prompt": "1"},
                        {"id": "a", "model": "amazon.nova-micro-v1:0", "prompt": "2"},
                    ],
                },
                "steps",
            ),
        ]
        for body, field in bad_templates:
            response = api.http.post("/templates", json=body)
            assert response.status_code == 422, response.text
            assert any(e["field"].startswith(field) for e in response.json()["errors"])

        broken = tmp_path / "broken.json"
        broken.write_bytes(b'[{"a": 1}, {"a": ')
        response = api.http.post(
            "/seed-data", params={"filename": "broken.json"}, content=broken.read_bytes()
        )
        assert response.status_code == 422
        assert "truncated" in response.text

        assert mongo["jobs"].count_documents({"owner": user}) == 0
        assert mongo["templates"].count_documents({"owner": user}) == 2


class TestDuplicateGeneratePartition:
    def test_a_partition_command_delivered_twice_is_worked_once(
        self,
        api: GatewayClient,
        services: ServiceGroup,
        devstack: DevStack,
        mongo: Any,
        s3: Any,
    ) -> None:
        since = mark(services.generators)
        with model_latency(devstack, 50) as emulator:
            job = start_job(api, 400, "10")
            part = wait_until(
                lambda: mongo["partitions"].find_one({"job_id": job["id"], "status": "DISPATCHED"}),
                what="a partition to be dispatched",
                interval=0.02,
            )
            doc = mongo["jobs"].find_one({"_id": job["id"]})
            duplicate = GeneratePartition(
                message_id=f"generate-{part['lease_id']}",
                job_id=job["id"],
                partition=part["index"],
                attempt=part["attempt"],
                start=part["start"],
                end=part["end"],
                lease_id=part["lease_id"],
                lease_amount=part["lease_amount"],
                template=TemplateSpec.model_validate(doc["template"]),
                seed_key=doc["seed_key"],
                seed_count=doc["seed_count"],
            )
            exchange, routing_key = ROUTES[GeneratePartition]
            for _ in range(2):
                asyncio.run(
                    publish_to(
                        devstack.rabbitmq_url,
                        exchange.name,
                        routing_key,
                        duplicate.model_dump_json().encode(),
                        duplicate.message_id,
                    )
                )
            final = api.wait(job["id"], timeout=120)
            # The command and both copies reached a generator and were handled to the end.
            queue = Queues.GENERATE_PARTITION.name
            wait_until(
                lambda: consumed(since, queue, "Received")[duplicate.message_id] >= 3,
                what=f"{duplicate.message_id} to be received 3 times",
            )
            wait_drained(since, queue)
        assert final["status"] == "COMPLETED"
        rows = export_rows(s3, devstack.bucket, final["export"]["key"])
        assert len(rows) == len({r["id"] for r in rows}) == 400
        calls, cost = billed_picos(emulator, job["id"])
        assert calls == 800, "a duplicate delivery made model calls of its own"
        assert ledger(mongo, job["id"])["spent"] == cost
