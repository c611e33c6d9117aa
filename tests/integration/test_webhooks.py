"""Webhooks end to end: the API, every job event at a real receiver, retries, re-sends, refusals.

The session's services allow-list ``localhost`` (``tests/conftest.py``), so the
receiver (an HTTP server in this process) is reached as ``http://localhost:<port>``;
every other host must be https with public addresses only. Accounting retries
after 0.1-0.2 s, doubling up to 1 s, for 30 s.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from palette.common.messages import utcnow
from palette.common.webhooks import WebhookEvent, new_webhook_id
from palette.devstack import readiness
from palette.devstack.stack import DevStack
from palette.gateway.controllers.webhooks import new_secret
from tests.integration.gateway_fixtures import MakeApi
from tests.integration.jobs import TWO_STEPS, publish_to
from tests.integration.waiting import wait_until
from tests.integration.webhook_receiver import (
    Receiver,
    create_webhook,
    deliveries,
    send_test,
    wait_settled,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture
def receiver(gateway_url: str) -> Iterator[Receiver]:
    """A receiver, once the session's gateway has its broker (test-sends are published)."""
    wait_until(
        lambda: readiness.http_ok(f"{gateway_url}/ready"), what="the gateway ready", timeout=60
    )
    with Receiver() as running:
        yield running


class TestWebhookApi:
    def test_the_secret_is_shown_once_and_the_webhook_listed_without_it(
        self, make_api: MakeApi, receiver: Receiver
    ) -> None:
        _, api = make_api()
        created = create_webhook(api, receiver.url("/x"), ["job.completed", "job.completed"])
        assert created["secret"].startswith("whsec_")
        assert created["events"] == ["job.completed"]
        listed = api.http.get("/webhooks").json()["items"]
        assert [w["id"] for w in listed] == [created["id"]]
        assert "secret" not in listed[0]
        one = api.http.get(f"/webhooks/{created['id']}").json()
        assert one == {k: v for k, v in created.items() if k != "secret"}
        assert api.http.delete(f"/webhooks/{created['id']}").status_code == 204
        assert api.http.get(f"/webhooks/{created['id']}").status_code == 404
        assert api.http.get("/webhooks").json()["items"] == []

    def test_another_user_sees_none_of_them(self, make_api: MakeApi, receiver: Receiver) -> None:
        _, alice = make_api()
        _, bob = make_api()
        hook = create_webhook(alice, receiver.url("/a"))["id"]
        assert bob.http.get("/webhooks").json()["items"] == []
        for method, path in [
            ("GET", f"/webhooks/{hook}"),
            ("DELETE", f"/webhooks/{hook}"),
            ("POST", f"/webhooks/{hook}/test"),
            ("GET", f"/webhooks/{hook}/deliveries"),
            ("POST", f"/webhooks/{hook}/deliveries/msg_{'0' * 32}/resend"),
        ]:
            answer = bob.http.request(method, path)
            assert answer.status_code == 404, (method, path, answer.text)
            assert answer.json()["errors"][0]["field"] == "webhook_id"
        assert alice.http.get(f"/webhooks/{hook}").status_code == 200

    @pytest.mark.parametrize(
        ("url", "problem"),
        [
            ("https://127.0.0.1/hook", "127.0.0.1 is a loopback address"),
            ("https://10.20.30.40/hook", "10.20.30.40 is a private address"),
            ("https://169.254.169.254/latest/meta-data/", "is a cloud metadata address"),
            ("https://[::1]/hook", "::1 is a loopback address"),
            ("http://hooks.example.com/hook", "must use https"),
            ("https://hooks.invalid/hook", "hooks.invalid does not resolve"),
        ],
    )
    def test_a_url_that_is_not_public_https_is_refused(
        self, make_api: MakeApi, url: str, problem: str
    ) -> None:
        _, api = make_api()
        answer = api.http.post("/webhooks", json={"url": url})
        assert answer.status_code == 422, answer.text
        [error] = answer.json()["errors"]
        assert error["field"] == "url"
        assert problem in error["problem"]
        assert api.http.get("/webhooks").json()["items"] == []

    def test_a_name_resolving_to_loopback_is_refused_without_the_allow_list(
        self, strict_api: MakeApi, receiver: Receiver
    ) -> None:
        # The strict gateway allow-lists no host, as in production.
        _, api = strict_api()
        for url in (receiver.url("/x"), f"https://localhost:{receiver.port}/x"):
            answer = api.http.post("/webhooks", json={"url": url})
            assert answer.status_code == 422, answer.text
            assert answer.json()["errors"][0]["field"] == "url"
        problem = answer.json()["errors"][0]["problem"]
        assert "localhost resolves to" in problem
        assert "a loopback address" in problem

    def test_unknown_events_are_refused(self, make_api: MakeApi, receiver: Receiver) -> None:
        _, api = make_api()
        answer = api.http.post("/webhooks", json={"url": receiver.url("/x"), "events": ["job.x"]})
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["field"].startswith("events")


def submit_failing_job(devstack: DevStack, owner: str, seed_key: str) -> str:
    """A job as another system publishes it, with a model that has no price: it fails at once."""
    job_id = uuid.uuid4().hex
    body = {
        "job_id": job_id,
        "owner": owner,
        "template": {"steps": [{"id": "a", "model": "acme.gpt-9", "prompt": "{{ product }}"}]},
        "seed_key": seed_key,
        "num_records": 5,
        "budget_usd": "1",
    }
    raw = json.dumps(body).encode()
    asyncio.run(
        publish_to(devstack.rabbitmq_url, "palette.commands", "job.submit", raw, f"s-{job_id}")
    )
    return job_id


class TestJobEvents:
    def test_every_event_type_arrives_once_signed_for_its_subscribers_only(
        self, make_api: MakeApi, receiver: Receiver, devstack: DevStack, examples: Any, mongo: Any
    ) -> None:
        user, api = make_api()
        _, stranger = make_api()
        every = create_webhook(api, receiver.url("/every"))
        completed_only = create_webhook(api, receiver.url("/completed"), ["job.completed"])
        theirs = create_webhook(stranger, receiver.url("/stranger"))
        template = api.create_template(TWO_STEPS)
        seeds = api.upload_seeds(examples / "seeds.jsonl")
        job = {"template_id": template["id"], "seed_key": seeds["key"], "output_format": "jsonl"}
        seed = json.loads((examples / "seeds.jsonl").read_text().splitlines()[0])
        worst = Decimal(
            api.http.post(f"/templates/{template['id']}/preview", json={"seed": seed}).json()[
                "worst_case_usd"
            ]
        )
        # Stopped for its budget with less than one record's worst case left: > 95 % spent.
        exceeded = api.submit_job(**job, num_records=400, budget_usd=str(worst * 20))
        completed = api.submit_job(**job, num_records=10, budget_usd="1")
        cancelled = api.submit_job(**job, num_records=3000, budget_usd="50")
        api.cancel(cancelled["id"])
        failed = submit_failing_job(devstack, user, seeds["key"])
        # A job cancelled before it started has no export to wait for.
        finals = {
            job_id: api.wait(job_id, timeout=180, exported=False)["status"]
            for job_id in (exceeded["id"], completed["id"], cancelled["id"], failed)
        }
        assert finals == {
            exceeded["id"]: "BUDGET_EXCEEDED",
            completed["id"]: "COMPLETED",
            cancelled["id"]: "CANCELLED",
            failed: "FAILED",
        }
        got = receiver.wait_for("/every", 6, what="six events")
        settled = wait_settled(api, every["id"], 6)
        assert {d["status"] for d in settled} == {"delivered"}
        assert all(d["attempt_count"] == 1 for d in settled)
        events = []
        for request in receiver.received("/every"):
            body = request.verify(every["secret"])
            data = body["data"]
            events.append((body["type"], data["job_id"], data.get("threshold_percent")))
        assert Counter(events) == Counter(
            [
                ("job.completed", completed["id"], None),
                ("job.cancelled", cancelled["id"], None),
                ("job.failed", failed, None),
                ("job.budget_exceeded", exceeded["id"], None),
                ("job.budget_threshold", exceeded["id"], 75),
                ("job.budget_threshold", exceeded["id"], 90),
            ]
        )
        assert len({r.webhook_id for r in got}) == 6
        assert {d["id"] for d in settled} == {r.webhook_id for r in got}
        for delivery in settled:
            [attempt] = delivery["attempts"]
            assert attempt["status_code"] == 200
            assert attempt["latency_ms"] >= 0
            assert attempt["error"] is None
        [only] = receiver.wait_for("/completed", 1)
        assert only.verify(completed_only["secret"])["data"]["job_id"] == completed["id"]
        # Every event was fanned out before its deliveries were sent: none for the stranger.
        assert mongo["webhook_deliveries"].count_documents({"webhook_id": theirs["id"]}) == 0
        assert receiver.received("/stranger") == []
        assert len(receiver.received("/completed")) == 1
        assert len(receiver.received("/every")) == 6


class TestRetriesAndResends:
    def test_a_receiver_answering_500_three_times_gets_the_fourth_attempt(
        self, make_api: MakeApi, receiver: Receiver
    ) -> None:
        _, api = make_api()
        hook = create_webhook(api, receiver.url("/flaky"))
        receiver.plan("/flaky", [500, 500, 500])
        delivery_id = send_test(api, hook["id"])
        got = receiver.wait_for("/flaky", 4)
        [delivery] = wait_settled(api, hook["id"], 1)
        assert delivery["id"] == delivery_id
        assert delivery["status"] == "delivered"
        assert delivery["event_type"] == "webhook.test"
        assert [a["status_code"] for a in delivery["attempts"]] == [500, 500, 500, 200]
        assert [a["attempt"] for a in delivery["attempts"]] == [1, 2, 3, 4]
        assert [a["error"] for a in delivery["attempts"]] == ["HTTP 500"] * 3 + [None]
        assert all(a["latency_ms"] >= 0 for a in delivery["attempts"])
        assert {r.webhook_id for r in got} == {delivery_id}
        for request in got:
            assert request.verify(hook["secret"])["type"] == "webhook.test"
        # Exponential backoff: each wait at least half of 0.2 s, 0.4 s, 0.8 s.
        gaps = [b.at - a.at for a, b in itertools.pairwise(got[:4])]
        assert all(gap >= low for gap, low in zip(gaps, [0.1, 0.2, 0.4], strict=True)), gaps
        assert gaps[0] < gaps[2], gaps

        resent = api.http.post(f"/webhooks/{hook['id']}/deliveries/{delivery_id}/resend")
        assert resent.status_code == 202, resent.text
        again = receiver.wait_for("/flaky", 5)[-1]
        assert again.webhook_id == delivery_id
        assert again.body == got[0].body
        wait_until(
            lambda: deliveries(api, hook["id"])[0]["attempt_count"] == 5,
            what="fifth attempt logged",
            timeout=30,
            interval=0.05,
        )
        api.http.delete(f"/webhooks/{hook['id']}")

    def test_resending_an_unknown_delivery_is_404(
        self, make_api: MakeApi, receiver: Receiver
    ) -> None:
        _, api = make_api()
        hook = create_webhook(api, receiver.url("/r"))
        answer = api.http.post(f"/webhooks/{hook['id']}/deliveries/msg_{'1' * 32}/resend")
        assert answer.status_code == 404
        assert answer.json()["errors"][0]["field"] == "delivery_id"

    def test_a_deleted_webhooks_pending_delivery_fails_and_is_not_sent_again(
        self, make_api: MakeApi, receiver: Receiver, mongo: Any
    ) -> None:
        _, api = make_api()
        hook = create_webhook(api, receiver.url("/gone"))
        receiver.plan("/gone", [503] * 100)
        send_test(api, hook["id"])
        receiver.wait_for("/gone", 2)
        assert api.http.delete(f"/webhooks/{hook['id']}").status_code == 204
        failed = wait_until(
            lambda: mongo["webhook_deliveries"].find_one(
                {"webhook_id": hook["id"], "status": "failed"}
            ),
            what="the delivery failed",
            timeout=30,
            interval=0.05,
        )
        # Nothing is in flight once it failed: every request made is counted.
        assert failed["attempts"][-1]["error"] == "the webhook was deleted"
        assert failed["attempt_count"] == len(receiver.received("/gone")) + 1


class TestRefusedAtSendTime:
    def test_a_stored_url_resolving_to_loopback_is_never_connected_to(
        self, make_api: MakeApi, receiver: Receiver, mongo: Any
    ) -> None:
        # A webhook stored before the rules changed (the gateway would refuse it now):
        # the sender checks again, on the address it would connect to.
        user, api = make_api()
        hooks = []
        for host in ("127.0.0.1", "[::1]"):
            hook = {
                "_id": new_webhook_id(),
                "owner": user,
                "url": f"https://{host}:{receiver.port}/stored",
                "events": [e.value for e in WebhookEvent],
                "description": None,
                "secret": new_secret(),
                "created_at": utcnow(),
            }
            mongo["webhooks"].insert_one(hook)
            hooks.append(hook)
        for hook in hooks:
            send_test(api, hook["_id"])
        reasons = []
        for hook in hooks:
            [delivery] = wait_settled(api, hook["_id"], 1)
            assert delivery["status"] == "failed"
            [attempt] = delivery["attempts"]
            assert attempt["status_code"] is None
            reasons.append(attempt["error"])
        assert "127.0.0.1 is a loopback address" in reasons[0]
        assert "::1 is a loopback address" in reasons[1]
        assert all(r.startswith("refused: ") for r in reasons)
        assert receiver.connections == 0
