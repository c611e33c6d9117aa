"""``POST /templates/{id}/preview``: rendered without a model, or one record through it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import httpx
import pytest

from palette.common.pricing import PricingTable
from palette.common.token_bounds import input_token_bound
from palette.common.topology import Queues
from palette.devstack.services import ServiceGroup
from palette.devstack.stack import DevStack
from tests.integration.deliveries import wait_settled
from tests.integration.gateway_fixtures import MakeApi
from tests.integration.jobs import MICRO, TWO_STEPS, problem

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

PRICING = PricingTable.load()
SEED = {"product": "a kettle", "persona": {"role": "chef", "mood": "calm"}}
THREE_STEPS = {
    **TWO_STEPS,
    "name": "three-steps",
    "steps": [
        *TWO_STEPS["steps"],
        {
            "id": "rating",
            "model": MICRO,
            "prompt": "Rate: {{ steps.answer.output }}",
            "max_tokens": 20,
        },
    ],
}


def usd(picos: int) -> Decimal:
    return Decimal(picos) / 10**12


def record_costs(billed: list[dict[str, Any]]) -> dict[str, int]:
    """Cost of each previewed record (by preview id) from its first billed call per step.

    A reply that made the generator run the record again would bill more calls
    with the same ids after the answer; the answer reports the first run.
    """
    first: dict[tuple[str, str], dict[str, Any]] = {}
    for call in billed:
        meta = call["request_metadata"]
        first.setdefault((meta["preview_id"], meta["step"]), call)
    costs: dict[str, int] = {}
    for (preview_id, _), call in first.items():
        cost = PRICING.cost(call["model_id"], call["input_tokens"], call["output_tokens"])
        costs[preview_id] = costs.get(preview_id, 0) + cost
    return costs


class TestRenderedPreview:
    def test_each_step_is_rendered_with_token_bound_and_worst_case_without_a_model_call(
        self, make_api: MakeApi, devstack: DevStack
    ) -> None:
        _, api = make_api()
        template = api.create_template(TWO_STEPS)
        calls_before = len(devstack.emulator_control().billing())
        response = api.http.post(f"/templates/{template['id']}/preview", json={"seed": SEED})
        assert response.status_code == 200, response.text
        view = response.json()
        first, second = view["steps"]
        assert first["prompt"] == "Ask about a kettle as a chef."
        assert first["input_tokens"] == input_token_bound(first["prompt"])
        price = PRICING.price(MICRO)
        assert Decimal(first["worst_case_usd"]) == usd(
            first["input_tokens"] * price.input_picos + 60 * price.output_picos
        )
        assert second["prompt"] == "Answer: <output of step question>"
        assert second["system"] == "Support agent for a kettle."
        assert second["input_tokens"] > input_token_bound("Answer: ", second["system"]) + 60
        assert Decimal(view["worst_case_usd"]) == Decimal(first["worst_case_usd"]) + Decimal(
            second["worst_case_usd"]
        )
        assert (view["run"], view["cost_usd"], first["output"]) == (False, None, None)
        assert len(devstack.emulator_control().billing()) == calls_before

    def test_a_seed_lacking_fields_and_a_missing_version_are_refused(
        self, make_api: MakeApi
    ) -> None:
        _, api = make_api()
        template = api.create_template(TWO_STEPS)
        found = problem(
            api.http.post(f"/templates/{template['id']}/preview", json={"seed": {"x": 1}}), 422
        )
        assert found["errors"][0]["missing"] == ["persona.role", "product"]
        problem(
            api.http.post(
                f"/templates/{template['id']}/preview", params={"version": 2}, json={"seed": SEED}
            ),
            404,
        )
        problem(api.http.post(f"/templates/{template['id']}/preview", json={}), 422)


class TestRunPreview:
    def test_one_record_runs_once_and_the_billing_log_equals_what_the_preview_reports(
        self, make_api: MakeApi, devstack: DevStack, services: ServiceGroup
    ) -> None:
        user, api = make_api()
        template = api.create_template(THREE_STEPS)
        response = api.http.post(
            f"/templates/{template['id']}/preview", params={"run": "true"}, json={"seed": SEED}
        )
        assert response.status_code == 200, response.text
        view = response.json()
        assert (view["run"], view["error"]) == (True, None)
        first, second, third = view["steps"]
        assert second["prompt"] == f"Answer: {first['output']}"
        assert third["prompt"] == f"Rate: {second['output']}"
        preview_id = devstack.emulator_control().billing(owner=user)[0]["request_metadata"][
            "preview_id"
        ]
        # Wait until the request can never run again: acknowledged, or dead-lettered.
        fate = wait_settled(services, devstack.rabbitmq_url, Queues.PREVIEW_RECORD, preview_id)
        billed = devstack.emulator_control().billing(owner=user)
        billed_cost = sum(
            PRICING.cost(c["model_id"], c["input_tokens"], c["output_tokens"]) for c in billed
        )
        assert (len(billed), usd(billed_cost)) == (3, Decimal(view["cost_usd"])), (
            f"{len(fate.deliveries)} runs billed {len(billed)} calls"
        )
        assert {c["request_metadata"]["preview_id"] for c in billed} == {preview_id}
        assert (len(fate.deliveries), fate.dead_lettered) == (1, False)
        # The reservation before it is a request/reply too: answered once, never requeued.
        reserved = wait_settled(
            services, devstack.rabbitmq_url, Queues.RESERVE_PREVIEW_BUDGET, f"reserve-{preview_id}"
        )
        assert (len(reserved.deliveries), reserved.dead_lettered) == (1, False)
        by_step = {c["request_metadata"]["step"]: c for c in billed}
        for step in view["steps"]:
            call = by_step[step["id"]]
            assert (step["input_tokens"], step["output_tokens"]) == (
                call["input_tokens"],
                call["output_tokens"],
            )
            cost = PRICING.cost(step["model"], call["input_tokens"], call["output_tokens"])
            assert Decimal(step["cost_usd"]) == usd(cost)
        assert Decimal(view["cost_usd"]) <= Decimal(view["worst_case_usd"])

    def test_a_record_whose_worst_case_is_above_the_preview_cap_is_not_run(
        self, make_api: MakeApi, devstack: DevStack
    ) -> None:
        user, api = make_api()
        sonnet = "anthropic.claude-sonnet-4-5-20250929-v1:0"
        costly = {
            "name": "big",
            "steps": [{"id": "a", "model": sonnet, "prompt": "{{ product }}", "max_tokens": 64000}],
        }
        template = api.create_template(costly)
        response = api.http.post(
            f"/templates/{template['id']}/preview", params={"run": "true"}, json={"seed": SEED}
        )
        assert problem(response, 422)["errors"][0]["field"] == "run"
        assert devstack.emulator_control().billing(owner=user) == []


class TestJobEstimate:
    BIG_SEED = {"product": "a kettle " * 40, "persona": {"role": "chef", "mood": "calm"}}

    def test_without_run_the_worst_case_of_the_largest_seed_is_scaled_to_num_records(
        self, make_api: MakeApi, devstack: DevStack, gateway_url: str
    ) -> None:
        user, api = make_api()
        template = api.create_template(TWO_STEPS)
        path = f"/templates/{template['id']}/preview"
        alone = api.http.post(path, json={"seed": self.BIG_SEED})
        assert alone.status_code == 200, alone.text
        response = api.http.post(
            path, json={"seed": SEED, "more_seeds": [self.BIG_SEED], "num_records": 250}
        )
        assert response.status_code == 200, response.text
        view = response.json()
        estimate = view["estimate"]
        big = Decimal(alone.json()["worst_case_usd"])
        assert big > Decimal(view["worst_case_usd"])
        assert Decimal(estimate["worst_case_usd"]) == big * 250
        assert (estimate["num_records"], estimate["records_run"], estimate["spent_usd"]) == (
            250,
            0,
            "0",
        )
        assert (estimate["mean_usd"], estimate["low_usd"], estimate["high_usd"]) == (None,) * 3
        assert devstack.emulator_control().billing(owner=user) == []
        schemas = httpx.get(f"{gateway_url}/schema/openapi.json").json()["components"]["schemas"]
        assert schemas["PreviewRequest"]["properties"]["num_records"]["default"] == 1000
        assert {"mean_usd", "low_usd", "high_usd", "worst_case_usd"} <= set(
            schemas["JobEstimateView"]["properties"]
        )

    def test_with_run_mean_and_spread_are_the_records_run_as_billed_times_num_records(
        self, make_api: MakeApi, devstack: DevStack
    ) -> None:
        user, api = make_api()
        template = api.create_template(TWO_STEPS)
        more = [self.BIG_SEED, {"product": "a teapot", "persona": {"role": "barista"}}]
        response = api.http.post(
            f"/templates/{template['id']}/preview",
            params={"run": "true"},
            json={"seed": SEED, "more_seeds": more},
        )
        assert response.status_code == 200, response.text
        view = response.json()
        estimate = view["estimate"]
        assert (estimate["num_records"], estimate["records_run"], estimate["errors"]) == (
            1000,
            3,
            [],
        )
        costs = list(record_costs(devstack.emulator_control().billing(owner=user)).values())
        assert len(costs) == 3
        assert usd(costs[0]) == Decimal(view["cost_usd"])
        assert Decimal(estimate["spent_usd"]) == usd(sum(costs))
        assert Decimal(estimate["mean_usd"]) == usd(-(-sum(costs) * 1000 // 3))
        assert Decimal(estimate["low_usd"]) == usd(min(costs) * 1000)
        assert Decimal(estimate["high_usd"]) == usd(max(costs) * 1000)
        assert Decimal(estimate["high_usd"]) <= Decimal(estimate["worst_case_usd"])

    def test_a_bad_seed_among_more_seeds_is_named_and_nothing_is_billed(
        self, make_api: MakeApi, devstack: DevStack
    ) -> None:
        user, api = make_api()
        template = api.create_template(TWO_STEPS)
        path = f"/templates/{template['id']}/preview"
        lacking = problem(
            api.http.post(
                path, params={"run": "true"}, json={"seed": SEED, "more_seeds": [SEED, {"x": 1}]}
            ),
            422,
        )
        assert lacking["errors"][0]["field"] == "more_seeds[1]"
        sonnet = "anthropic.claude-sonnet-4-5-20250929-v1:0"
        dear = api.create_template(
            {
                "name": "dear",
                "steps": [
                    {"id": "a", "model": sonnet, "prompt": "{{ product }}", "max_tokens": 30000}
                ],
            }
        )
        # The first seed fits in the preview cap; the second's worst case does not.
        above = problem(
            api.http.post(
                f"/templates/{dear['id']}/preview",
                params={"run": "true"},
                json={"seed": {"product": "tea"}, "more_seeds": [{"product": "t" * 30000}]},
            ),
            422,
        )
        assert above["errors"][0]["field"] == "run"
        assert devstack.emulator_control().billing(owner=user) == []
