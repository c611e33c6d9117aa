"""The broker and the database go away during a job (cases 3, 4, 10, 11)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.faults.broker import PrivateRabbit
from tests.faults.conftest import FAULT_CASE_TIMEOUT, Rig
from tests.faults.harness import ONE_STEP, submit
from tests.integration.waiting import wait_billed

pytestmark = [pytest.mark.faults, pytest.mark.timeout(FAULT_CASE_TIMEOUT + 180)]


@pytest.mark.parametrize(
    "how",
    [
        pytest.param("stop_app", id="stop_app-start_app"),
        pytest.param("full", id="stop-and-restart"),
    ],
)
def test_rabbitmq_restarted_during_a_job(how: str, rig: Rig, fault_broker: PrivateRabbit) -> None:
    """Case 3: the broker goes away mid-job; services reconnect by themselves."""
    _, api = rig.services(generators=2)
    rig.emulator.configure(latency_ms=40)
    started = time.monotonic()
    job = submit(api, rig.seeds, 300, "5")
    wait_billed(rig.stack, job["id"], 60)
    if how == "stop_app":
        fault_broker.stop_app()
        time.sleep(3)
        fault_broker.start_app()
    else:
        fault_broker.restart(downtime=3)
    final = rig.final(job)
    counters = rig.count(f"rabbitmq {how} + restart", job, started)
    assert final["status"] == "COMPLETED", final
    counters.assert_zero()


@pytest.mark.parametrize(
    "kill",
    [
        pytest.param(False, marks=pytest.mark.quick, id="stop-start"),
        pytest.param(True, id="kill-9-start"),
    ],
)
def test_database_restarted_during_a_job(kill: bool, rig: Rig) -> None:
    """Case 4: the database server restarts mid-job; services reconnect by themselves."""
    _, api = rig.services(generators=2)
    rig.emulator.configure(latency_ms=40)
    started = time.monotonic()
    job = submit(api, rig.seeds, 300, "5")
    wait_billed(rig.stack, job["id"], 60)
    rig.stack.restart_database(downtime=3, kill=kill)
    final = rig.final(job)
    counters = rig.count(f"database {'kill -9' if kill else 'stop'} + restart", job, started)
    assert final["status"] == "COMPLETED", final
    counters.assert_zero()


def test_post_jobs_while_the_broker_is_down(rig: Rig, fault_broker: PrivateRabbit) -> None:
    """Case 10: ``POST /jobs`` with the broker down answers within 5 s and loses no job.

    Either an error and no job document, or 201 and the job runs once the
    broker is back (the gateway's outbox). Reads keep answering meanwhile.
    """
    group, api = rig.services(generators=1)
    template = api.create_template({**ONE_STEP, "name": "broker-down"})
    seeds = api.upload_seeds(rig.seeds)
    body = {
        "template_id": template["id"],
        "seed_key": seeds["key"],
        "num_records": 60,
        "budget_usd": "5",
        "output_format": "jsonl",
    }
    fault_broker.stop_app()
    try:
        answers: list[tuple[int, float, dict[str, Any]]] = []
        for _ in range(3):
            begun = time.monotonic()
            response = api.http.post("/jobs", json=body, timeout=30)
            answers.append((response.status_code, time.monotonic() - begun, response.json()))
        begun = time.monotonic()
        listing = api.http.get("/jobs", timeout=30)
        list_seconds = time.monotonic() - begun
    finally:
        fault_broker.start_app()
    assert all(seconds < 5 for _, seconds, _ in answers), answers
    assert listing.status_code == 200, listing.text
    assert list_seconds < 5, list_seconds
    accepted = [doc for status, _, doc in answers if status == 201]
    refused = [doc for status, _, doc in answers if status != 201]
    assert all(status in (201, 503) for status, _, _ in answers), answers
    owned = rig.mongo["jobs"].count_documents({"template_id": template["id"]})
    assert owned == len(accepted), "a refused request left a job, or an accepted one is missing"
    started = time.monotonic()
    for job in accepted:
        final = rig.final(job)
        counters = rig.count("POST /jobs with the broker down (outbox)", job, started)
        assert final["status"] == "COMPLETED", final
        counters.assert_zero()
    for problem in refused:
        assert "broker" in str(problem).lower(), problem
    assert group.gateway.alive()


def test_partition_outliving_the_consumer_timeout(rig: Rig, fault_broker: PrivateRabbit) -> None:
    """Case 11: a partition runs longer than the broker's consumer timeout.

    The suite's node wants acknowledgements within ``consumer_timeout_ms``
    (10 s) or closes the channel and redelivers; the one partition here takes
    ~16 s (80 calls of 200 ms, one at a time).
    """
    overrides = {
        "scheduler": {"PALETTE_SCHEDULER_PARTITION_SIZE": "80"},
        "generator": {"PALETTE_GENERATOR_CONCURRENCY": "1"},
    }
    _, api = rig.services(generators=2, overrides=overrides)
    rig.emulator.configure(latency_ms=200)
    assert fault_broker.consumer_timeout_ms < 80 * 200
    started = time.monotonic()
    job = submit(api, rig.seeds, 80, "5")
    final = rig.final(job)
    counters = rig.count("partition outlives the consumer timeout", job, started)
    assert final["status"] == "COMPLETED", final
    counters.assert_zero()
    assert counters.billed_calls == 80, "the redelivered partition was generated again"
    assert "timed out waiting for" in fault_broker.log_text(), "the broker never timed out"


def test_lease_request_outliving_the_consumer_timeout(
    rig: Rig, fault_broker: PrivateRabbit
) -> None:
    """Case 11b: the scheduler's handler outlives the consumer timeout between claim and ask.

    The scheduler claims a partition (RESERVING, a window slot taken) and then
    stalls 12 s before publishing its ``ReserveBudget`` (a failpoint), longer than
    the node's 10 s consumer timeout: the broker closes the channel under the
    handler, which goes on detached, and its publish meets the closed channel.
    The publish must wait for the channel to reopen instead of failing, or the
    partition stays RESERVING until the scheduler restarts and the job never ends.
    Here the publish comes after the close (a closed channel, retried before
    too); the close of a publish in flight, which failed ``test_budget_race``
    once, is reproduced at will in tests/integration/test_publish_retry.py.
    """
    overrides = {
        "scheduler": {
            "PALETTE_FAILPOINTS": "scheduler.before_reserve=sleep:12",
            "PALETTE_SCHEDULER_PARTITION_SIZE": "20",
        },
    }
    group, api = rig.services(generators=1, overrides=overrides)
    rig.emulator.configure(latency_ms=20)
    started = time.monotonic()
    job = submit(api, rig.seeds, 40, "5")
    final = rig.final(job)
    counters = rig.count("lease request outlives the consumer timeout", job, started)
    assert final["status"] == "COMPLETED", final
    counters.assert_zero()
    log = group.scheduler.log_text(since_start=True)
    assert "delivery_cancelled_handler_goes_on" in log, "no handler outlived the timeout"
    assert "detached_handler_failed" not in log
