"""Structured step outputs and judges on the real stack.

A three-step template: ``facts`` answers a JSON Schema (Nova Micro: forced tool
use), ``tip`` reads ``steps.facts.output.city`` (text), and ``grade`` judges the
tip on a 1-5 scale (Haiku: Converse structured output). The emulator makes a
share of the structured answers invalid, so some calls are made again: every
one of them is billed, and the ledger must still equal the billing log. The
exports keep the schema's types.
"""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from palette.devstack.client import GatewayClient
from palette.devstack.stack import DevStack
from tests.integration.jobs import (
    HAIKU,
    MICRO,
    MISTRAL,
    assert_ledger_matches_billing,
    problem,
    start,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

FACTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "city": {"type": "string", "minLength": 3},
        "population": {"type": "integer", "minimum": 1000, "maximum": 5000000},
        "coastal": {"type": "boolean"},
        "area_km2": {"type": "number", "minimum": 1},
        "landmarks": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "geo": {
            "type": "object",
            "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
            "required": ["lat", "lon"],
        },
    },
    "required": ["city", "population", "coastal", "area_km2", "landmarks", "geo"],
}
FACTS_TYPE = pa.struct(
    [
        ("city", pa.string()),
        ("population", pa.int64()),
        ("coastal", pa.bool_()),
        ("area_km2", pa.float64()),
        ("landmarks", pa.list_(pa.string())),
        ("geo", pa.struct([("lat", pa.float64()), ("lon", pa.float64())])),
    ]
)
"""The Parquet column of ``FACTS_SCHEMA``."""
GRADE_TYPE = pa.struct([("score", pa.int64()), ("reason", pa.string())])
"""The Parquet column of a judge step."""
TEMPLATE: dict[str, Any] = {
    "name": "city-tips",
    "steps": [
        {
            "id": "facts",
            "model": MICRO,
            "prompt": "Facts about a city where {{ persona.role }}s use {{ product }}.",
            "output_schema": FACTS_SCHEMA,
            "max_tokens": 300,
        },
        {
            "id": "tip",
            "model": HAIKU,
            "prompt": "A tip for {{ steps.facts.output.city }} "
            "(population {{ steps.facts.output.population }}).",
            "max_tokens": 30,
        },
        {
            "id": "grade",
            "kind": "judge",
            "model": HAIKU,
            "prompt": "Tip: {{ steps.tip.output }}",
            "rubric": "Is the tip specific to the city and useful?",
            "scale": [1, 5],
            "max_tokens": 200,
        },
    ],
}


def download(api: GatewayClient, job_id: str, **params: str) -> bytes:
    link = api.http.get(f"/jobs/{job_id}/download", params=params)
    assert link.status_code == 200, link.text
    return httpx.get(link.json()["url"]).content


def jsonl(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(row) for row in body.decode().splitlines() if row]


def kept_and_rejected(
    api: GatewayClient, job_id: str
) -> tuple[pa.Table, list[dict[str, Any]], list[dict[str, Any]]]:
    """A finished Parquet job's dataset (the table and its rows) and its rejected rows."""
    table = pq.read_table(io.BytesIO(download(api, job_id)), use_threads=False)
    return table, table.to_pylist(), jsonl(download(api, job_id, file="rejected"))


def assert_all_rejected_invalid(api: GatewayClient, job_id: str, n: int, detail: str) -> None:
    """A finished job kept nothing: its ``n`` records are all rejected as ``invalid_output``."""
    assert jsonl(download(api, job_id)) == []
    rejected = jsonl(download(api, job_id, file="rejected"))
    assert sorted(row["index"] for row in rejected) == list(range(n))
    for row in rejected:
        assert row["rejected_reason"] == "invalid_output", row
        assert detail in row["rejected_detail"], row


def invalid_at(rejected: list[dict[str, Any]]) -> dict[str, int]:
    """Records rejected as ``invalid_output`` (every call allowed invalid), by step."""
    steps = {"facts": 0, "grade": 0}
    for row in rejected:
        if row["rejected_reason"] == "invalid_output":
            steps[next(s for s in steps if f"'{s}'" in row["rejected_detail"])] += 1
    return steps


class TestStructuredJob:
    def test_judged_job_keeps_scores_retries_invalid_outputs_and_bills_every_call(
        self, api: GatewayClient, devstack: DevStack, mongo: Any
    ) -> None:
        n = 12
        emulator = devstack.emulator_control()
        before = emulator.stats().get("invalid_output", 0)
        emulator.configure(invalid_output_rate=0.25)
        try:
            _, _, job = start(
                api, n, TEMPLATE, output_format="parquet", keep_if="steps.grade.output.score >= 3"
            )
            final = api.wait(job["id"], timeout=180)
        finally:
            emulator.configure(invalid_output_rate=0.0)
        assert final["status"] == "COMPLETED", final
        invalid = emulator.stats().get("invalid_output", 0) - before
        assert invalid > 0, "the emulator made some answers invalid"

        table, kept, rejected = kept_and_rejected(api, job["id"])
        assert len(kept) + len(rejected) == n
        assert all(row["grade"]["score"] >= 3 for row in kept)
        lost = invalid_at(rejected)  # rare: every call allowed invalid
        judged = [row for row in rejected if row["rejected_reason"] != "invalid_output"]
        assert all(row["grade"]["score"] < 3 for row in judged)
        assert {row["rejected_reason"] for row in rejected} <= {"keep_if", "invalid_output"}
        scores = {row["grade"]["score"] for row in kept + judged}
        assert len(scores) >= 3, f"judge scores spread across the scale: {scores}"
        assert all(1 <= s <= 5 for s in scores)
        for row in kept:
            facts = row["facts"]
            assert 1000 <= facts["population"] <= 5000000
            assert isinstance(facts["coastal"], bool)
            assert facts["landmarks"]
            assert isinstance(row["grade"]["reason"], str)

        assert table.schema.field("facts").type == FACTS_TYPE
        assert table.schema.field("grade").type == GRADE_TYPE
        assert table.schema.field("tip").type == pa.string()

        doc = assert_ledger_matches_billing(devstack, mongo, job["id"])
        structured = doc["by_step"]["facts"]["calls"] + doc["by_step"]["grade"]["calls"]
        answered = 2 * n - 2 * lost["facts"] - lost["grade"]
        assert structured == answered + invalid, "each invalid answer cost one more call"
        assert doc["by_step"]["tip"]["calls"] == n - lost["facts"]
        # An answer asked again counts as retried; a step that stays invalid for every
        # call allowed fails its attempt instead, and the next attempt asks anew.
        assert 0 < doc["retried_calls"] <= invalid

    def test_a_judged_job_with_target_kept_ends_with_exactly_its_records_kept(
        self, api: GatewayClient, devstack: DevStack, mongo: Any
    ) -> None:
        """Schema step, a step reading its field, a judge, keep_if on the score, target kept."""
        n, cap = 8, 40
        emulator = devstack.emulator_control()
        before = emulator.stats().get("invalid_output", 0)
        emulator.configure(invalid_output_rate=0.2)
        try:
            _, _, job = start(
                api,
                n,
                TEMPLATE,
                output_format="parquet",
                keep_if="steps.grade.output.score >= 3",
                target="kept",
                max_generated=cap,
                partition_size=4,
            )
            final = api.wait(job["id"], timeout=220)
        finally:
            emulator.configure(invalid_output_rate=0.0)
        assert final["status"] == "COMPLETED", final
        assert final["records_kept"] == n
        kept = pq.read_table(io.BytesIO(download(api, job["id"])), use_threads=False).to_pylist()
        rejected = jsonl(download(api, job["id"], file="rejected"))
        assert len(kept) == n
        assert all(row["grade"]["score"] >= 3 for row in kept)
        assert all(row["facts"]["city"] for row in kept)
        reasons = {row["rejected_reason"] for row in rejected}
        assert reasons <= {"keep_if", "surplus", "invalid_output"}, reasons
        lost = invalid_at(rejected)  # rare: every call allowed invalid
        assert all(
            row["grade"]["score"] < 3 for row in rejected if row["rejected_reason"] == "keep_if"
        )
        generated = n + len(rejected)
        assert generated <= cap
        doc = assert_ledger_matches_billing(devstack, mongo, job["id"])
        invalid = emulator.stats().get("invalid_output", 0) - before
        structured = doc["by_step"]["facts"]["calls"] + doc["by_step"]["grade"]["calls"]
        answered = 2 * generated - 2 * lost["facts"] - lost["grade"]
        assert structured == answered + invalid
        assert doc["by_step"]["tip"]["calls"] == generated - lost["facts"]

    def test_a_record_never_answered_valid_output_is_rejected_and_the_job_goes_on(
        self, api: GatewayClient, devstack: DevStack, mongo: Any
    ) -> None:
        """Every answer invalid: each record is rejected, not its partition failed."""
        n, tries = 4, 3  # tries: the generator's max_output_attempts (its default)
        emulator = devstack.emulator_control()
        emulator.configure(invalid_output_rate=1.0)
        try:
            _, _, job = start(api, n, TEMPLATE, partition_size=2)
            final = api.wait(job["id"], timeout=180)
        finally:
            emulator.configure(invalid_output_rate=0.0)
        assert final["status"] == "COMPLETED", final
        assert_all_rejected_invalid(api, job["id"], n, f"'facts': no valid output in {tries} calls")
        doc = assert_ledger_matches_billing(devstack, mongo, job["id"])
        assert doc["by_step"]["facts"]["calls"] == n * tries, "every invalid answer is billed"
        assert doc["calls"] == n * tries, "no step after the invalid one is called"

    def test_exports_keep_nested_objects_in_jsonl_and_dotted_columns_in_csv(
        self, api: GatewayClient
    ) -> None:
        _, _, job = start(api, 4, TEMPLATE)
        final = api.wait(job["id"], timeout=120)
        assert final["status"] == "COMPLETED", final
        rows = jsonl(download(api, job["id"]))
        assert len(rows) == 4
        assert all(isinstance(row["facts"]["geo"]["lat"], float) for row in rows)
        assert all(isinstance(row["grade"]["score"], int) for row in rows)
        text = download(api, job["id"], format="csv").decode()
        header = text.splitlines()[0].split(",")
        for column in ("facts.city", "facts.geo.lat", "facts.landmarks", "grade.score", "tip"):
            assert column in header, header
        assert "facts" not in header


class TestTemplateChecks:
    def test_a_later_step_reads_the_schema_field_the_model_answered(
        self, api: GatewayClient
    ) -> None:
        created = api.create_template(TEMPLATE)
        seed = {"product": "a map app", "persona": {"role": "student"}}
        response = api.http.post(
            f"/templates/{created['id']}/preview", params={"run": "true"}, json={"seed": seed}
        )
        assert response.status_code == 200, response.text
        steps = response.json()["steps"]
        facts = json.loads(steps[0]["output"])
        assert facts["city"] in steps[1]["prompt"]
        assert str(facts["population"]) in steps[1]["prompt"]
        grade = json.loads(steps[2]["output"])
        assert 1 <= grade["score"] <= 5

    def test_a_field_the_schema_lacks_is_refused_naming_it(self, api: GatewayClient) -> None:
        steps = json.loads(json.dumps(TEMPLATE["steps"]))
        steps[1]["prompt"] = "A tip for {{ steps.facts.output.country }}."
        body = problem(api.http.post("/templates", json={"name": "bad", "steps": steps}), 422)
        error = body["errors"][0]
        assert error["field"] == "steps[1].prompt"
        assert "'country'" in error["problem"]
        assert "city" in error["problem"]

    def test_a_model_without_structured_output_or_tool_use_is_refused(
        self, api: GatewayClient
    ) -> None:
        steps = json.loads(json.dumps(TEMPLATE["steps"]))
        steps[2]["model"] = MISTRAL
        body = problem(api.http.post("/templates", json={"name": "bad", "steps": steps}), 422)
        assert body["errors"][0]["field"] == "steps[2].model"
        assert "structured output" in body["errors"][0]["problem"]

    def test_a_yaml_export_reads_back_with_the_schema_and_the_judge(
        self, api: GatewayClient
    ) -> None:
        created = api.create_template(TEMPLATE)
        exported = api.http.get(f"/templates/{created['id']}/yaml")
        assert exported.status_code == 200, exported.text
        assert "output_schema:" in exported.text
        assert "kind: judge" in exported.text
        imported = api.http.post(
            "/templates/yaml",
            content=exported.content,
            headers={"Content-Type": "application/yaml"},
        )
        assert imported.status_code == 201, imported.text
        steps = imported.json()["steps"]
        assert steps[0]["output_schema"] == FACTS_SCHEMA
        assert (steps[2]["kind"], steps[2]["scale"]) == ("judge", [1, 5])

    def test_a_schema_with_defs_and_refs_is_stored_and_answered(self, api: GatewayClient) -> None:
        schema = {
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "$defs": {"place": {"type": "object", "properties": {"name": {"type": "string"}}}},
            "type": "object",
            "properties": {"home": {"$ref": "#/$defs/place"}, "count": {"type": "integer"}},
            "required": ["count"],
        }
        step = {"id": "facts", "model": HAIKU, "prompt": "About {{ product }}.", "max_tokens": 200}
        created = api.create_template(
            {"name": "refs", "steps": [{**step, "output_schema": schema}]}
        )
        assert api.http.get(f"/templates/{created['id']}").json()["steps"][0]["output_schema"] == (
            schema
        )
        response = api.http.post(
            f"/templates/{created['id']}/preview",
            params={"run": "true"},
            json={"seed": {"product": "a map app"}},
        )
        assert response.status_code == 200, response.text
        assert response.json().get("error") is None, response.text
        assert isinstance(json.loads(response.json()["steps"][0]["output"])["count"], int)
