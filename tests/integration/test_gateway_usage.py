"""``GET /usage`` on the real services: jobs' and previews' spend equals the billing log.

A user runs two previews (two templates) and a job; once accounting has settled
them (``preview_reserved_usd`` back to 0, both previews counted), every grouping
of ``GET /usage`` is compared with the emulator's billing log, to the picodollar.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from palette.devstack.client import GatewayClient
from palette.devstack.stack import DevStack
from tests.integration.gateway_fixtures import MakeApi
from tests.integration.jobs import ONE_STEP, TWO_STEPS, cost, picos, problem, start, usage
from tests.integration.waiting import wait_usage_settled

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SEED = {"product": "a kettle", "persona": {"role": "chef"}}


def preview(api: GatewayClient, template_id: str) -> dict[str, Any]:
    response = api.http.post(
        f"/templates/{template_id}/preview", params={"run": "true"}, json={"seed": SEED}
    )
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    assert view["error"] is None
    return view


class TestUsageEqualsTheBillingLog:
    def test_jobs_and_previews_by_kind_model_and_day_equal_the_billing_log(
        self, make_api: MakeApi, devstack: DevStack
    ) -> None:
        user, api = make_api()
        shown = [preview(api, api.create_template(body)["id"]) for body in (TWO_STEPS, ONE_STEP)]
        _, _, job = start(api, 10)
        assert api.wait(job["id"], timeout=90)["status"] == "COMPLETED"
        by_kind = wait_usage_settled(api, 2)

        emulator = devstack.emulator_control()
        job_calls = emulator.billing(job_id=job["id"])
        preview_calls = [
            c for c in emulator.billing(owner=user) if "preview_id" in c["request_metadata"]
        ]
        assert len(preview_calls) == 3
        assert picos(by_kind["preview_usd"]) == cost(preview_calls)
        assert sum(picos(v["cost_usd"]) for v in shown) == cost(preview_calls)
        assert picos(by_kind["job_usd"]) == cost(job_calls) > 0
        assert picos(by_kind["total_usd"]) == cost(job_calls) + cost(preview_calls)
        assert [(r["key"], r["kind"], r["calls"], r["items"]) for r in by_kind["rows"]] == [
            ("job", "job", len(job_calls), 1),
            ("preview", "preview", 3, 2),
        ]

        by_model = usage(api, group_by="model")
        for kind, calls in (("job", job_calls), ("preview", preview_calls)):
            rows = {r["key"]: r for r in by_model["rows"] if r["kind"] == kind}
            models = Counter(c["model_id"] for c in calls)
            assert {m: rows[m]["calls"] for m in rows} == dict(models)
            for model in models:
                mine = [c for c in calls if c["model_id"] == model]
                assert picos(rows[model]["cost_usd"]) == cost(mine)
                assert rows[model]["input_tokens"] == sum(c["input_tokens"] for c in mine)
                assert rows[model]["output_tokens"] == sum(c["output_tokens"] for c in mine)

        today = datetime.now(UTC).date().isoformat()
        by_day = usage(api, group_by="day", **{"from": today, "to": today})
        assert [(r["key"], r["kind"], picos(r["cost_usd"])) for r in by_day["rows"]] == [
            (today, "job", cost(job_calls)),
            (today, "preview", cost(preview_calls)),
        ]
        by_template = usage(api, group_by="template")
        assert {(r["kind"], r["items"]) for r in by_template["rows"]} == {
            ("job", 1),
            ("preview", 1),
        }

    def test_nobody_sees_another_users_usage_and_other_days_are_empty(
        self, make_api: MakeApi
    ) -> None:
        _, alice = make_api()
        preview(alice, alice.create_template(ONE_STEP)["id"])
        wait_usage_settled(alice, 1)
        _, bob = make_api()
        assert usage(bob)["rows"] == []
        assert usage(bob)["total_usd"] == "0"
        today = datetime.now(UTC).date()
        first, last = (today - timedelta(days=300)).isoformat(), str(today - timedelta(days=1))
        past = usage(alice, **{"from": first, "to": last}, group_by="kind")
        assert (past["rows"], past["first_day"], past["last_day"]) == ([], first, last)
        assert usage(alice, group_by="kind")["rows"][0]["kind"] == "preview"


class TestUsageBadInput:
    @pytest.mark.parametrize(
        ("params", "field"),
        [
            ({"from": "2026-03-02", "to": "2026-03-01"}, "from"),
            ({"from": "2020-01-01", "to": "2026-03-01"}, "from"),
            ({"from": "yesterday"}, "from"),
            ({"to": "2026-02-30"}, "to"),
            ({"to": "20260301"}, "to"),
            ({"group_by": "week"}, "group_by"),
        ],
    )
    def test_is_a_problem_naming_the_parameter(
        self, make_api: MakeApi, params: dict[str, str], field: str
    ) -> None:
        _, api = make_api()
        found = problem(api.http.get("/usage", params=params), 422)
        assert found["errors"][0]["field"] == field, found
