"""``target: "kept"`` on the real stack: generate until num_records records pass the filters.

The template draws one of three tones per record; ``keep_if`` keeps one of them,
so about a third of the records pass and the job needs several waves of new
record indexes. The dataset must be exactly the first ``num_records`` passing
records by index (computed here from the draws), the rejected file every other
generated record with its reason, and the ledger equal to the billing log. A
budget too small for the target stops the job with what it kept.
"""

from __future__ import annotations

from typing import Any

import pytest

from palette.common.samplers import draw_variables
from palette.devstack.client import GatewayClient
from palette.devstack.stack import DevStack
from tests.integration.jobs import assert_ledger_matches_billing, job_body, problem, start
from tests.integration.test_keep_and_dedup import SPEC, TEMPLATE, lines

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

KEEP = 'vars.tone == "formal"'


def passing(job_id: str, upto: int) -> list[int]:
    """Record indexes below ``upto`` that ``KEEP`` is true for."""
    return [i for i in range(upto) if draw_variables(SPEC.variables, job_id, i)["tone"] == "formal"]


def test_a_kept_target_ends_with_exactly_num_records_passing_records(
    api: GatewayClient, devstack: DevStack, mongo: Any
) -> None:
    n, cap = 8, 80  # a third pass: 80 records hold 8 passing ones but by a remote chance
    _, _, job = start(
        api, n, TEMPLATE, keep_if=KEEP, target="kept", partition_size=4, max_generated=cap
    )
    final = api.wait(job["id"], timeout=240)
    assert final["status"] == "COMPLETED", final
    job_id = final["id"]
    doc = mongo["jobs"].find_one({"_id": job_id})
    generated = int(doc["planned_records"])
    assert n < generated <= cap
    assert final["records_done"] == generated
    expected = passing(job_id, generated)[:n]
    assert len(expected) == n, "the job stopped generating before it had kept n records"
    kept = lines(api, job_id, "dataset")
    assert [row["index"] for row in kept] == expected
    rejected = {row["index"]: row["rejected_reason"] for row in lines(api, job_id, "rejected")}
    assert set(rejected) == set(range(generated)) - set(expected)
    for index, reason in rejected.items():
        tone = draw_variables(SPEC.variables, job_id, index)["tone"]
        assert reason == ("keep_if" if tone != "formal" else "surplus"), (index, reason)
        assert reason != "surplus" or index > expected[-1]
    assert (final["records_kept"], final["target"], final["max_generated"]) == (n, "kept", cap)
    assert (final["short_of_target"], final["short_of_target_reason"]) == (False, None)
    board = api.http.get(f"/jobs/{job_id}/dashboard").json()["progress"]
    assert (board["generated"], board["kept"]) == (generated, n)
    assert sum(board["rejected"].values()) == generated - n
    ledger = assert_ledger_matches_billing(devstack, mongo, job_id)
    assert ledger["calls"] == generated, "every generated record was paid for once"


def test_a_kept_target_stopped_by_max_generated_ends_completed_but_short_of_target(
    api: GatewayClient, devstack: DevStack, mongo: Any
) -> None:
    """COMPLETED (nothing failed) yet short: the API and the dashboard say so, and why."""
    n, cap = 4, 6
    _, _, job = start(
        api, n, TEMPLATE, keep_if='vars.tone == "none"', target="kept", max_generated=cap
    )
    final = api.wait(job["id"], timeout=240)
    assert final["status"] == "COMPLETED", final
    assert final["records_kept"] == 0
    assert final["short_of_target"] is True, final
    reason = final["short_of_target_reason"]
    assert "kept 0 of 4 records" in reason, reason
    assert "max_generated (6)" in reason, reason
    shown = api.http.get(f"/jobs/{final['id']}").json()
    assert (shown["short_of_target"], shown["short_of_target_reason"]) == (True, reason)
    listed = api.http.get("/jobs").json()["items"]
    assert next(j for j in listed if j["id"] == final["id"])["short_of_target"] is True
    board = api.http.get(f"/jobs/{final['id']}/dashboard").json()["progress"]
    assert (board["short_of_target"], board["short_of_target_reason"]) == (True, reason)
    assert (board["generated"], board["kept"], board["rejected"]) == (cap, 0, {"keep_if": cap})
    assert_ledger_matches_billing(devstack, mongo, final["id"])


def test_a_kept_target_that_runs_out_of_budget_stops_with_what_it_kept(
    api: GatewayClient, devstack: DevStack, mongo: Any
) -> None:
    n = 30
    _, _, job = start(
        api, n, TEMPLATE, keep_if=KEEP, target="kept", partition_size=5, budget_usd="0.0001"
    )
    final = api.wait(job["id"], timeout=240)
    assert final["status"] == "BUDGET_EXCEEDED", final
    job_id = final["id"]
    ledger = assert_ledger_matches_billing(devstack, mongo, job_id)
    assert ledger["spent"] <= ledger["budget"]
    made = sorted(row["index"] for row in lines(api, job_id, "dataset") if row["complete"])
    assert 0 < len(made) < n, final
    assert all(draw_variables(SPEC.variables, job_id, i)["tone"] == "formal" for i in made)
    assert final["records_kept"] == len(made)
    assert final["short_of_target"] is True, final


def test_max_generated_is_checked(api: GatewayClient) -> None:
    created, seeds, _ = start(api, 5, TEMPLATE)
    body = job_body(created["id"], seeds["key"], num_records=5)
    bad = problem(api.http.post("/jobs", json={**body, "max_generated": 9}), 422)
    assert bad["errors"][0]["field"] == "max_generated"
    bad = problem(api.http.post("/jobs", json={**body, "target": "kept", "max_generated": 4}), 422)
    assert "at least num_records" in bad["errors"][0]["problem"]
