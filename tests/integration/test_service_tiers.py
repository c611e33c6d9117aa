"""Online jobs at a Bedrock service tier: sent as ``serviceTier``, priced at the tier's price."""

from __future__ import annotations

from typing import Any

import pytest

from palette.common.service_tiers import rated_table
from palette.devstack.client import GatewayClient
from palette.devstack.stack import DevStack
from tests.integration.jobs import (
    MICRO,
    NOVA_PRO,
    PRICING,
    assert_ledger_matches_billing,
    job_body,
    problem,
    start,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

PRO_STEP = {
    "name": "pro-one-step",
    "steps": [
        {"id": "q", "model": NOVA_PRO, "prompt": "Ask about {{ product }}.", "max_tokens": 30}
    ],
}


class TestFlexTierJob:
    def test_is_billed_at_flex_and_its_ledger_equals_the_billing_log(
        self, api: GatewayClient, devstack: DevStack, mongo: Any
    ) -> None:
        _, _, job = start(api, 40, PRO_STEP, service_tier="flex", budget_usd="1")
        assert job["service_tier"] == "flex"
        assert job["mode"] == "online"
        final = api.wait(job["id"], timeout=150)
        assert final["status"] == "COMPLETED", final
        billed = devstack.emulator_control().billing(job_id=job["id"])
        assert len(billed) == 40
        assert {entry["service_tier"] for entry in billed} == {"flex"}
        assert {entry["request_metadata"]["service_tier"] for entry in billed} == {"flex"}
        doc = assert_ledger_matches_billing(devstack, mongo, job["id"])
        tokens_in = sum(entry["input_tokens"] for entry in billed)
        tokens_out = sum(entry["output_tokens"] for entry in billed)
        flex = rated_table(PRICING, "flex").cost(NOVA_PRO, tokens_in, tokens_out)
        assert doc["spent"] == flex
        # Half the standard price for the same tokens: the tier's price, not the default's.
        assert 2 * doc["spent"] == PRICING.cost(NOVA_PRO, tokens_in, tokens_out)

    def test_the_records_lease_is_reserved_at_the_tiers_price(
        self, api: GatewayClient, mongo: Any
    ) -> None:
        _, _, flex = start(api, 5, PRO_STEP, service_tier="flex")
        _, _, priority = start(api, 5, PRO_STEP, service_tier="priority")
        assert api.wait(flex["id"], timeout=120)["status"] == "COMPLETED"
        assert api.wait(priority["id"], timeout=120)["status"] == "COMPLETED"
        estimates = {
            job["id"]: mongo["jobs"].find_one({"_id": job["id"]})["record_estimate"]
            for job in (flex, priority)
        }
        # Same template and seeds: the worst case scales with the tier's price (0.5 vs 1.75).
        assert estimates[flex["id"]] * 7 == estimates[priority["id"]] * 2


def _post_job(api: GatewayClient, template_id: str, **extra: str) -> Any:
    """``POST /jobs`` of one record (refused before its seed file is read)."""
    body = job_body(template_id, "seed-data/none.jsonl", num_records=1, **extra)
    return api.http.post("/jobs", json=body)


class TestRefused:
    def test_a_tier_the_model_is_not_served_at_is_a_422_naming_service_tier(
        self, api: GatewayClient
    ) -> None:
        created = api.create_template(
            {"name": "micro", "steps": [{"id": "q", "model": MICRO, "prompt": "Hi"}]}
        )
        response = _post_job(api, created["id"], service_tier="flex")
        body = problem(response, 422)
        assert body["errors"][0]["field"] == "service_tier"
        assert "'flex' service tier" in body["detail"]

    def test_batch_mode_with_a_service_tier_is_a_422_naming_service_tier(
        self, api: GatewayClient
    ) -> None:
        created = api.create_template(PRO_STEP)
        response = _post_job(api, created["id"], mode="batch", service_tier="flex")
        body = problem(response, 422)
        assert body["errors"][0]["field"] == "service_tier"
        assert "online calls only" in body["detail"]

    def test_batch_mode_refuses_a_cache_prompt_step_naming_mode(self, api: GatewayClient) -> None:
        step = {**PRO_STEP["steps"][0], "cache_prompt": True}
        created = api.create_template({**PRO_STEP, "steps": [step]})
        body = problem(_post_job(api, created["id"], mode="batch"), 422)
        assert body["errors"][0]["field"] == "mode"
        # Refused by the batch price check (no prompt-caching prices in batch).
        assert "no prompt-caching price (cache_prompt) in batch" in body["detail"]

    @pytest.mark.parametrize(
        "extra",
        [
            pytest.param({"kind": "judge", "rubric": "Is it clear?"}, id="judge"),
            pytest.param(
                {"output_schema": {"type": "object", "properties": {"a": {"type": "string"}}}},
                id="output-schema",
            ),
        ],
    )
    def test_batch_mode_takes_structured_and_judge_steps(
        self, api: GatewayClient, extra: dict[str, Any]
    ) -> None:
        step = {**PRO_STEP["steps"][0], **extra}
        created = api.create_template({**PRO_STEP, "steps": [step]})
        for mode in ("batch", "online"):  # refused for their missing seed file only
            response = _post_job(api, created["id"], mode=mode)
            errors = response.json().get("errors", [])
            assert [e.get("field") for e in errors] == ["seed_key"], response.text

    def test_an_unknown_tier_is_a_400_naming_the_field(self, api: GatewayClient) -> None:
        created = api.create_template(PRO_STEP)
        response = _post_job(api, created["id"], service_tier="reserved")
        assert response.status_code in (400, 422), response.text
        assert "service_tier" in response.text

    @pytest.mark.parametrize(
        ("extra", "field"),
        [({"service_tier": "flex"}, "service_tier"), ({"mode": "batch"}, "mode")],
    )
    def test_a_cache_prompt_step_off_the_default_tier_is_a_422(
        self, api: GatewayClient, extra: dict[str, str], field: str
    ) -> None:
        cached = {**PRO_STEP["steps"][0], "cache_prompt": True}  # type: ignore[index]
        created = api.create_template({"name": "pro-cached", "steps": [cached]})
        response = _post_job(api, created["id"], **extra)
        body = problem(response, 422)
        assert body["errors"][0]["field"] == field
        assert "prompt-caching price (cache_prompt)" in body["detail"]
        # At the default tier the same template passes the rate check (the seed file is next).
        assert "cache_prompt" not in _post_job(api, created["id"]).text
