"""Money of calls whose outcome is unknown, settled from the provider's invocation log.

The emulator bills some calls and never answers them, or a generator is
killed in the middle of a partition: either way the ledger must end equal to
the emulator's billing log to the picodollar, never above the budget, with no
lease left open.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest

from palette.accounting.invocation_reader import InvocationLogReader
from palette.common.money import usd_to_picos
from palette.devstack.client import GatewayClient
from palette.devstack.services import ServiceGroup, ServiceProcess
from palette.devstack.stack import DevStack
from tests.integration.jobs import (
    MICRO,
    assert_ids,
    assert_ledger_matches_billing,
    billed_picos,
    export_rows,
    ledger,
    model_latency,
    start_job,
)
from tests.integration.waiting import wait_until

pytestmark = [pytest.mark.faults, pytest.mark.integration, pytest.mark.timeout(300)]


def leases_of(mongo: Any, job_id: str, kind: str) -> list[dict[str, Any]]:
    return list(mongo["leases"].find({"job_id": job_id, "reconcile.kind": kind}))


def assert_settled(devstack: DevStack, mongo: Any, job_id: str, budget: str) -> dict[str, Any]:
    """Ledger == billing log exactly, within budget, every lease closed and announced."""
    delivery = devstack.emulator_control().invocation_log()
    bound = float(devstack.env()["PALETTE_ACCOUNTING_INVOCATION_LOG_DELAY_SECONDS"])
    assert delivery["slowest_seconds"] <= bound, f"the log came later than its bound: {delivery}"
    doc = assert_ledger_matches_billing(devstack, mongo, job_id)
    calls, cost = billed_picos(devstack.emulator_control(), job_id)
    print(f"job {job_id}: billed {calls} calls, {cost} pico; ledger {doc['spent']} pico")
    assert doc["spent"] <= usd_to_picos(Decimal(budget))
    assert doc.get("unreconciled", 0) == 0, "the log was on: nothing settles at a worst case"
    assert mongo["leases"].count_documents({"job_id": job_id, "closed": False}) == 0
    open_holds = {"job_id": job_id, "reconcile.state": {"$ne": "done"}, "reconcile": {"$exists": 1}}
    assert mongo["leases"].count_documents(open_holds) == 0
    return doc


class TestBilledTimeouts:
    @pytest.mark.parametrize("mode", ["error", "drop"])
    def test_billed_but_unanswered_calls_are_settled_at_their_logged_cost(
        self,
        api: GatewayClient,
        devstack: DevStack,
        mongo: Any,
        s3: Any,
        mode: str,
    ) -> None:
        emulator = devstack.emulator_control()
        emulator.configure(billed_timeout_rate=0.15, billed_timeout_mode=mode, seed=23)
        try:
            job = start_job(api, 120, "5")
            final = api.wait(job["id"], timeout=180)
        finally:
            emulator.reset()
        assert final["status"] == "COMPLETED", final
        rows = export_rows(s3, devstack.bucket, final["export"]["key"])
        assert assert_ids(rows, job["id"], 120) == set(range(120))
        doc = assert_settled(devstack, mongo, job["id"], "5")
        held = leases_of(mongo, job["id"], "unknown")
        assert held, "no attempt reported a call of unknown outcome"
        unknown = {call for lease in held for call in lease["reconcile"]["calls"]}
        billed = {c["request_metadata"]["call_id"] for c in emulator.billing(job_id=job["id"])}
        # Every call reported unknown was billed (this fault bills them all) and is settled.
        assert unknown <= billed
        assert doc["calls"] >= 240 + len(unknown)
        print(f"{mode}: {len(unknown)} billed calls without an answer, in {len(held)} leases")

    def test_a_tight_budget_holds_only_the_worst_case_of_unknown_calls(
        self, api: GatewayClient, devstack: DevStack, mongo: Any, s3: Any
    ) -> None:
        probe = start_job(api, 20, "1")
        assert api.wait(probe["id"])["status"] == "COMPLETED"
        per_record = ledger(mongo, probe["id"])["spent"] / 20
        budget = str(Decimal(int(per_record * 80)) / 10**12)
        emulator = devstack.emulator_control()
        emulator.configure(billed_timeout_rate=0.2, billed_timeout_mode="error", seed=31)
        try:
            job = start_job(api, 200, budget)
            final = api.wait(job["id"], timeout=180)
        finally:
            emulator.reset()
        assert final["status"] == "BUDGET_EXCEEDED", final
        assert_settled(devstack, mongo, job["id"], budget)
        assert leases_of(mongo, job["id"], "unknown")
        made = assert_ids(export_rows(s3, devstack.bucket, final["export"]["key"]), job["id"], 200)
        assert 20 <= len(made) < 200


class TestAccountingRestart:
    def test_held_leases_are_settled_by_a_restarted_accounting(
        self,
        api: GatewayClient,
        services: ServiceGroup,
        devstack: DevStack,
        mongo: Any,
        s3: Any,
    ) -> None:
        emulator = devstack.emulator_control()
        emulator.configure(billed_timeout_rate=0.2, billed_timeout_mode="error", seed=7)
        try:
            job = start_job(api, 60, "5")
            waiting = {"job_id": job["id"], "reconcile.state": "waiting"}
            wait_until(
                lambda: mongo["leases"].count_documents(waiting),
                what="a lease to be held",
                timeout=60,
                interval=0.05,
            )
            services.accounting.kill()
            services.accounting.start()
            services.accounting.wait_ready(timeout=120)
            final = api.wait(job["id"], timeout=180)
        finally:
            emulator.reset()
        assert final["status"] == "COMPLETED", final
        assert_settled(devstack, mongo, job["id"], "5")
        assert assert_ids(export_rows(s3, devstack.bucket, final["export"]["key"]), job["id"], 60)


class TestInvocationLog:
    def test_a_billed_call_is_found_by_its_lease_in_the_delivered_log(
        self, devstack: DevStack, s3: Any
    ) -> None:
        lease, call_id = f"lease-{uuid.uuid4().hex}", uuid.uuid4().hex
        client = boto3.session.Session().client(
            "bedrock-runtime",
            endpoint_url=devstack.bedrock_endpoint_url,
            region_name="us-east-1",
            aws_access_key_id="x",
            aws_secret_access_key="x",
        )
        before = datetime.now(UTC)
        response = client.converse(
            modelId=MICRO,
            messages=[{"role": "user", "content": [{"text": "hello there"}]}],
            inferenceConfig={"maxTokens": 12},
            requestMetadata={"lease_id": lease, "step": "s", "call_id": call_id},
        )
        emulator = devstack.emulator_control()
        emulator.flush_invocation_log()
        status = emulator.invocation_log()
        assert status["enabled"]
        assert status["bucket"] == devstack.bucket
        reader = InvocationLogReader(s3, devstack.bucket, status["prefix"], "us-east-1")
        found = reader.calls_of({lease, "other"}, before, datetime.now(UTC))
        usage = response["usage"]
        assert found["other"] == []
        assert [
            (c.call_id, c.step, c.model_id, c.input_tokens, c.output_tokens) for c in found[lease]
        ] == [(call_id, "s", MICRO, usage["inputTokens"], usage["outputTokens"])]


def partitions_running(generator: ServiceProcess, job_id: str) -> int:
    """Partitions of the job this generator process started and has not ended."""
    running = 0
    for line in generator.log_text(since_start=True).splitlines():
        if job_id not in line or not line.startswith("{"):
            continue
        event = json.loads(line).get("event")
        if event == "partition_started":
            running += 1
        elif event in ("partition_completed", "partition_failed"):
            running -= 1
    return running


def busy_generator(services: ServiceGroup, job_id: str, timeout: float = 60) -> ServiceProcess:
    """A running generator that is in the middle of a partition of the job."""
    return wait_until(
        lambda: next(
            (g for g in services.generators if g.alive() and partitions_running(g, job_id) > 0),
            None,
        ),
        what="a generator to get a partition of the job",
        timeout=timeout,
        interval=0.05,
    )


class TestKilledGenerator:
    def test_a_generator_killed_mid_partition_costs_exactly_what_was_billed(
        self,
        api: GatewayClient,
        services: ServiceGroup,
        devstack: DevStack,
        mongo: Any,
        s3: Any,
    ) -> None:
        kills = 2
        with model_latency(devstack, 150):
            job = start_job(api, 600, "10")
            for _ in range(kills):
                victim = busy_generator(services, job["id"])
                time.sleep(0.3)  # some calls made, some in flight
                victim.kill()
                victim.start()
                victim.wait_ready(timeout=120)
            final = api.wait(job["id"], timeout=240)
        assert final["status"] == "COMPLETED", final
        rows = export_rows(s3, devstack.bucket, final["export"]["key"])
        assert assert_ids(rows, job["id"], 600) == set(range(600))
        assert_settled(devstack, mongo, job["id"], "10")
        lost = leases_of(mongo, job["id"], "lost")
        assert len(lost) >= kills, "each killed holder's lease is settled from the log"
        parts = list(mongo["partitions"].find({"job_id": job["id"]}))
        assert sum(p.get("holders_lost", 0) for p in parts) >= kills
        assert all(p["failures"] == 0 for p in parts), "a lost holder is not the partition's fault"
        print(
            f"{len(lost)} leases of killed holders settled from the log: "
            f"{sum(int(lease['settled']) for lease in lost)} pico"
        )
