"""keep_if and dedup on the real stack: the dataset keeps exactly what the rules say.

A template built to repeat itself (its prompt is one of three tones, so the model
answers one of three texts) runs 30 records; the export must hold, in index
order, the first record of each answer that passes ``keep_if``, and the rejected
file every other complete record with its reason. Every call is still billed
and in the ledger: rejected records were paid for.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from palette.common.samplers import draw_variables
from palette.common.templates import TemplateSpec
from palette.devstack.client import GatewayClient
from palette.devstack.stack import DevStack
from tests.integration.jobs import MICRO, assert_ledger_matches_billing, problem, start

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

TONES = ["formal", "casual", "curious"]
SENTENCE = "the quick brown fox jumps over the lazy dog by the quiet river bank at dawn"
TEMPLATE: dict[str, Any] = {
    "name": "repeats",
    "variables": {
        "tone": {"type": "category", "values": TONES},
        "line": {
            "type": "category",
            "values": [SENTENCE, SENTENCE + " again", "thermostats save energy at home"],
        },
    },
    "steps": [
        {"id": "answer", "model": MICRO, "prompt": "Say hello, {{ vars.tone }}.", "max_tokens": 24}
    ],
}
SPEC = TemplateSpec.model_validate({k: TEMPLATE[k] for k in ("steps", "variables")})


def finished(api: GatewayClient, n: int, **job: Any) -> dict[str, Any]:
    _, _, created = start(api, n, TEMPLATE, **job)
    final = api.wait(created["id"], timeout=180)
    assert final["status"] == "COMPLETED", final
    return final


def lines(api: GatewayClient, job_id: str, file: str) -> list[dict[str, Any]]:
    link = api.http.get(f"/jobs/{job_id}/download", params={"file": file})
    assert link.status_code == 200, link.text
    body = httpx.get(link.json()["url"]).content
    return [json.loads(row) for row in body.decode().splitlines() if row]


def test_keep_if_and_exact_dedup_keep_the_first_passing_record_of_each_answer(
    api: GatewayClient, devstack: DevStack, mongo: Any
) -> None:
    n = 30
    final = finished(
        api,
        n,
        keep_if='vars.tone != "casual"',
        dedup={"field": "steps.answer.output", "mode": "exact"},
    )
    job_id = final["id"]
    expected_kept, expected_rejected, seen = [], {}, set()
    for index in range(n):
        tone = draw_variables(SPEC.variables, job_id, index)["tone"]
        if tone == "casual":
            expected_rejected[index] = "keep_if"
        elif tone in seen:
            expected_rejected[index] = "duplicate"
        else:
            seen.add(tone)
            expected_kept.append(index)
    kept = lines(api, job_id, "dataset")
    rejected = lines(api, job_id, "rejected")
    assert [row["index"] for row in kept] == expected_kept
    assert {row["index"]: row["rejected_reason"] for row in rejected} == expected_rejected
    export = final["export"]
    assert (export["records"], export["rejected"]) == (len(expected_kept), len(expected_rejected))
    assert sum(export["rejected_reasons"].values()) == export["rejected"]
    first_of = {row["vars.tone"]: row["index"] for row in kept}
    for row in rejected:
        if row["rejected_reason"] == "duplicate":
            assert row["rejected_detail"] == f"duplicate of record {first_of[row['vars.tone']]}"
    doc = assert_ledger_matches_billing(devstack, mongo, job_id)
    assert doc["calls"] == n, "every record was paid for, rejected or not"


def test_near_dedup_rejects_the_near_repeat_of_an_earlier_record(api: GatewayClient) -> None:
    n = 24
    final = finished(api, n, dedup={"field": "vars.line", "mode": "near", "threshold": 0.7})
    job_id = final["id"]
    kept = lines(api, job_id, "dataset")
    firsts: dict[str, int] = {}
    for index in range(n):
        firsts.setdefault(str(draw_variables(SPEC.variables, job_id, index)["line"]), index)
    near_group = [firsts[v] for v in firsts if v.startswith("the quick")]
    other = [firsts[v] for v in firsts if not v.startswith("the quick")]
    assert sorted(row["index"] for row in kept) == sorted([min(near_group), *other])


def test_filters_that_read_what_a_record_lacks_are_refused(api: GatewayClient) -> None:
    created, seeds, _ = start(api, 5, TEMPLATE)
    body = {
        "template_id": created["id"],
        "seed_key": seeds["key"],
        "num_records": 5,
        "budget_usd": "1",
        "output_format": "jsonl",
    }
    bad = problem(api.http.post("/jobs", json={**body, "keep_if": "steps.grade.output > 3"}), 422)
    assert bad["errors"][0]["field"] == "keep_if"
    assert "no step 'grade'" in bad["errors"][0]["problem"]
    bad = problem(api.http.post("/jobs", json={**body, "dedup": {"field": "vars.mood"}}), 422)
    assert bad["errors"][0]["field"] == "dedup.field"
    unfiltered = api.wait(api.submit_job(**body)["id"], timeout=120)
    link = api.http.get(f"/jobs/{unfiltered['id']}/download", params={"file": "rejected"})
    assert link.status_code == 409, link.text


def test_a_templates_keep_if_applies_with_the_jobs(api: GatewayClient) -> None:
    template = {**TEMPLATE, "name": "filtered", "keep_if": 'vars.tone != "casual"'}
    n = 24
    _, _, created = start(api, n, template, keep_if='vars.tone != "formal"')
    final = api.wait(created["id"], timeout=180)
    assert final["status"] == "COMPLETED", final
    job_id = final["id"]
    tones = {i: draw_variables(SPEC.variables, job_id, i)["tone"] for i in range(n)}
    kept = lines(api, job_id, "dataset")
    assert [row["index"] for row in kept] == [i for i in range(n) if tones[i] == "curious"]
    details = {row["index"]: row["rejected_detail"] for row in lines(api, job_id, "rejected")}
    assert details == {
        i: "template keep_if is false" if tone == "casual" else "keep_if is false"
        for i, tone in tones.items()
        if tone != "curious"
    }


def test_a_template_whose_keep_if_reads_what_a_record_lacks_is_refused(
    api: GatewayClient,
) -> None:
    template = {**TEMPLATE, "keep_if": "steps.grade.output | int > 3"}
    bad = problem(api.http.post("/templates", json=template), 422)
    assert bad["errors"][0]["field"] == "keep_if"
    assert "no step 'grade'" in bad["errors"][0]["problem"]
    stored = api.create_template({**TEMPLATE, "keep_if": "vars.tone != 'casual'"})
    assert stored["keep_if"] == "vars.tone != 'casual'"
