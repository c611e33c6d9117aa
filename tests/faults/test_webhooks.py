"""Webhook deliveries survive the death of the processes that carry them.

A delivery lives in the database and its events on the broker, never only in a
process: accounting killed with a delivery in flight, or while an event waits,
delivers it after it restarts; a scheduler killed between a job's end and its
announcement announces it when it restarts.
"""

from __future__ import annotations

import signal
from collections import Counter

import pytest

from palette.devstack import readiness
from tests.faults.conftest import FAULT_CASE_TIMEOUT, Rig
from tests.faults.harness import submit
from tests.integration.waiting import wait_until
from tests.integration.webhook_receiver import (
    Receiver,
    create_webhook,
    send_test,
    wait_settled,
)

pytestmark = [pytest.mark.faults, pytest.mark.timeout(FAULT_CASE_TIMEOUT)]

ALLOW = {"PALETTE_WEBHOOK_ALLOWED_HOSTS": '["localhost"]'}
# Attempts end after 2 s; a dead process's claim lapses after 3 s; retries within a second.
WEBHOOKS = {
    "gateway": ALLOW,
    "accounting": {
        **ALLOW,
        "PALETTE_ACCOUNTING_WEBHOOK_TIMEOUT_SECONDS": "2",
        "PALETTE_ACCOUNTING_WEBHOOK_CLAIM_SECONDS": "3",
        "PALETTE_ACCOUNTING_WEBHOOK_RETRY_INITIAL_SECONDS": "0.2",
        "PALETTE_ACCOUNTING_WEBHOOK_RETRY_MAX_INTERVAL_SECONDS": "1",
        "PALETTE_ACCOUNTING_WEBHOOK_POLL_SECONDS": "0.2",
    },
}


@pytest.mark.quick
def test_deliveries_pending_while_accounting_is_killed_arrive_after_it_restarts(
    rig: Rig,
) -> None:
    """One delivery is in flight when accounting dies (kill -9), one is sent while it is down."""
    group, api = rig.services(generators=1, overrides=WEBHOOKS)
    # A test-send is published by the gateway: wait until it has its broker (/ready).
    ready = f"{group.gateway_url}/ready"
    group.gateway.process.wait_until(lambda: readiness.http_ok(ready), 60.0, "ready")
    with Receiver() as receiver:
        hook = create_webhook(api, receiver.url("/hook"))
        release = receiver.hold("/hook")
        in_flight = send_test(api, hook["id"])
        receiver.wait_for("/hook", 1, what="the first attempt, held by the receiver")
        group.accounting.kill(signal.SIGKILL)
        release.set()  # its answer finds no one
        while_down = send_test(api, hook["id"])  # waits on accounting's queue
        group.accounting.start()
        group.accounting.wait_ready()
        got = receiver.wait_for("/hook", 3, what="both deliveries after the restart")
        settled = wait_settled(api, hook["id"], 2)
    assert {d["id"]: d["status"] for d in settled} == {
        in_flight: "delivered",
        while_down: "delivered",
    }
    # The same webhook-id on the attempt cut short and on the one after the restart.
    assert Counter(r.webhook_id for r in got) == Counter({in_flight: 2, while_down: 1})
    for request in got:
        assert request.verify(hook["secret"])["type"] == "webhook.test"


def test_a_job_end_the_scheduler_died_before_announcing_is_announced_after_its_restart(
    rig: Rig,
) -> None:
    """The failpoint kills the scheduler between a job's move to COMPLETED and its event."""
    armed = {"PALETTE_FAILPOINTS": "scheduler.before_final_announce=kill"}
    group, api = rig.services(generators=1, overrides={**WEBHOOKS, "scheduler": armed})
    with Receiver() as receiver:
        hook = create_webhook(api, receiver.url("/ended"), ["job.completed"])
        job = submit(api, rig.seeds, 20, "5")
        assert group.scheduler.wait(120) == -signal.SIGKILL
        doc = rig.mongo["jobs"].find_one({"_id": job["id"]})
        assert (doc["status"], doc["status_announced"]) == ("COMPLETED", False)
        assert receiver.received("/ended") == []
        assert group.scheduler.process.env is not None
        group.scheduler.process.env.pop("PALETTE_FAILPOINTS")
        group.scheduler.start()
        [got] = receiver.wait_for("/ended", 1, what="the completed event after the restart")
        body = got.verify(hook["secret"])
    assert (body["type"], body["data"]["job_id"]) == ("job.completed", job["id"])
    wait_until(
        lambda: rig.mongo["jobs"].find_one({"_id": job["id"]})["status_announced"] is True,
        what="the move marked announced",
        timeout=30,
        interval=0.05,
    )
