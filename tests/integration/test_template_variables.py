"""Template variables and seed sampling on the real stack, checked against the billing log.

Every draw is a function of the job id and the record index (and of the seed
file), so the export must hold exactly what ``palette.common.samplers`` computes
for each record, whichever attempt or generator made it; and the draws must
have reached the model: the billed input tokens follow the drawn tone.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from palette.common.samplers import (
    SeedProfile,
    Stratify,
    draw_variables,
    preview_variables,
    seed_position,
)
from palette.common.templates import TemplateSpec
from palette.devstack.client import GatewayClient
from palette.devstack.stack import DevStack
from tests.integration.jobs import (
    MICRO,
    assert_ledger_matches_billing,
    export_rows,
    problem,
    start,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

LONG_TONE = "patient, warm and extremely detailed " * 12
TEMPLATE: dict[str, Any] = {
    "name": "variables",
    "variables": {
        "tone": {"type": "category", "values": ["terse", LONG_TONE], "weights": [1, 1]},
        "age": {"type": "int", "min": 18, "max": 80},
        "share": {"type": "float", "min": 0, "max": 1},
        "other_topic": {"type": "choice_from_seed", "field": "topic"},
    },
    "steps": [
        {
            "id": "question",
            "model": MICRO,
            "prompt": "Ask a {{ vars.age }}-year-old about {{ topic }} (not {{ vars.other_topic }})"
            " in a {{ vars.tone }} tone.",
            "max_tokens": 16,
        }
    ],
}
# 24 + 4 + 2 records: drawn uniformly, "a" would fill 80 % of a job.
TOPICS = ["a"] * 24 + ["b"] * 4 + ["c"] * 2


def seed_file(tmp_path: Path) -> Path:
    path = tmp_path / "topics.jsonl"
    path.write_text("".join(json.dumps({"topic": t, "n": i}) + "\n" for i, t in enumerate(TOPICS)))
    return path


def run(
    api: GatewayClient, devstack: DevStack, s3: Any, tmp_path: Path, sampling: Any, n: int, fmt: str
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    _, _, job = start(
        api, n, TEMPLATE, seeds=seed_file(tmp_path), seed_sampling=sampling, output_format=fmt
    )
    final = api.wait(job["id"], timeout=180)
    assert final["status"] == "COMPLETED", final
    rows = export_rows(s3, devstack.bucket, final["export"]["key"])
    assert len(rows) == n
    return final, sorted(rows, key=lambda r: int(r["index"]))


def test_stratified_job_holds_the_draws_of_each_record_and_bills_them(
    api: GatewayClient, devstack: DevStack, s3: Any, mongo: Any, tmp_path: Path
) -> None:
    final, rows = run(api, devstack, s3, tmp_path, {"stratify": "topic"}, 30, "parquet")
    job_id = final["id"]
    records = [{"topic": t, "n": i} for i, t in enumerate(TOPICS)]
    profile = SeedProfile.build(records, ["topic"], "topic")
    variables = TemplateSpec.model_validate(
        {k: TEMPLATE[k] for k in ("steps", "variables")}
    ).variables
    for row in rows:
        index = int(row["index"])
        drawn = draw_variables(variables, job_id, index, profile.values)
        assert {name: row[f"vars.{name}"] for name in drawn} == drawn, index
        sampling = Stratify(stratify="topic")
        assert row["seed_index"] == seed_position(sampling, job_id, index, 30, profile)
    # Balanced across the topics although the file is 80 % "a".
    assert Counter(TOPICS[row["seed_index"]] for row in rows) == {"a": 10, "b": 10, "c": 10}
    assert {row["vars.tone"] for row in rows} == {"terse", LONG_TONE}
    # The draws reached the model: every long-tone prompt was billed more input tokens.
    billed = devstack.emulator_control().billing(job_id=job_id)
    tokens = {int(call["request_metadata"]["record"]): call["input_tokens"] for call in billed}
    long_ones = [tokens[int(r["index"])] for r in rows if r["vars.tone"] == LONG_TONE]
    short_ones = [tokens[int(r["index"])] for r in rows if r["vars.tone"] == "terse"]
    assert min(long_ones) > max(short_ones)
    assert_ledger_matches_billing(devstack, mongo, job_id)


def test_shuffled_job_draws_every_seed_once_per_pass(
    api: GatewayClient, devstack: DevStack, s3: Any, tmp_path: Path
) -> None:
    _, rows = run(api, devstack, s3, tmp_path, "shuffle", 60, "jsonl")
    first, second = rows[:30], rows[30:]
    assert sorted(r["seed_index"] for r in first) == list(range(30))
    assert sorted(r["seed_index"] for r in second) == list(range(30))
    assert [r["seed_index"] for r in first] != [r["seed_index"] for r in second]


def test_bad_variables_and_samplings_are_refused_naming_the_field(
    api: GatewayClient, tmp_path: Path
) -> None:
    bad = {**TEMPLATE, "steps": [{**TEMPLATE["steps"][0], "prompt": "{{ vars.mood }}"}]}
    body = problem(api.http.post("/templates", json=bad), 422)
    assert any(
        e["field"] == "steps[0].prompt" and "vars.mood is not a variable" in e["problem"]
        for e in body["errors"]
    ), body
    created = api.create_template(TEMPLATE)
    seeds = api.upload_seeds(seed_file(tmp_path))
    response = api.http.post(
        "/jobs",
        json={
            "template_id": created["id"],
            "seed_key": seeds["key"],
            "num_records": 5,
            "budget_usd": "1",
            "output_format": "jsonl",
            "seed_sampling": {"stratify": "colour"},
        },
    )
    body = problem(response, 422)
    assert "colour" in json.dumps(body), body


def test_a_run_preview_renders_and_calls_with_the_records_draws(
    api: GatewayClient, devstack: DevStack, user: str
) -> None:
    template = api.create_template(TEMPLATE)
    seeds = [{"topic": "a"}, {"topic": "b"}]
    response = api.http.post(
        f"/templates/{template['id']}/preview",
        params={"run": "true"},
        json={"seed": seeds[0], "more_seeds": seeds[1:]},
    )
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["error"] is None, view
    spec = TemplateSpec.model_validate({k: TEMPLATE[k] for k in ("steps", "variables")})
    drawn = preview_variables(spec.variables, seeds)[0]
    expected = (
        f"Ask a {drawn['age']}-year-old about a (not {drawn['other_topic']}) "
        f"in a {drawn['tone']} tone."
    )
    (step,) = view["steps"]
    assert step["prompt"] == expected
    # The generator rendered the same prompt: the model was billed what the preview shows.
    billed = devstack.emulator_control().billing(owner=user)
    first = [
        c
        for c in billed
        if c["request_metadata"]["preview_id"] == billed[0]["request_metadata"]["preview_id"]
    ]
    assert [c["input_tokens"] for c in first] == [step["input_tokens"]]
