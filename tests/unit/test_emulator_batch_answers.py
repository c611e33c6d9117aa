"""The emulator's batch entries are answered as its online Converse calls are.

A structured entry (``outputConfig`` json_schema, or a forced ``toolConfig``)
gets the same deterministic schema-matching JSON as the same request online,
a share ``invalid_output_rate`` of them invalid (counted in ``stats``), and
every answered entry is billed at the batch rate.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from palette.common.output_schema import TOOL_NAME, canonical
from palette.devstack.batch_job import BatchJob, answer_entries
from palette.devstack.billing import BillingLog
from palette.devstack.converse import parse_request
from palette.devstack.faults import EmulatorConfig, FaultInjector
from palette.devstack.structured_answers import ask_of, respond

pytestmark = pytest.mark.unit

HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"  # Converse structured output
MICRO = "amazon.nova-micro-v1:0"  # forced tool use
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5}},
    "required": ["score"],
}


def job(model_id: str) -> BatchJob:
    return BatchJob(
        arn="arn:aws:bedrock:us-east-1:0:model-invocation-job/abcdefghijkl",
        name="job",
        model_id=model_id,
        role_arn="arn:aws:iam::0:role/r",
        input_uri="s3://b/in.jsonl",
        output_uri="s3://b/out/",
        token=None,
        tags={"job_id": "j"},
        invocation_type="Converse",
    )


def entry(i: int, structured: dict[str, Any]) -> dict[str, Any]:
    body = {
        "messages": [{"role": "user", "content": [{"text": f"Grade answer {i}."}]}],
        "inferenceConfig": {"maxTokens": 100, "temperature": 0.5},
        **structured,
    }
    return {"recordId": f"{i:011d}", "modelInput": body}


JSON_SCHEMA = {
    "outputConfig": {
        "textFormat": {
            "type": "json_schema",
            "structure": {"jsonSchema": {"schema": canonical(SCHEMA), "name": TOOL_NAME}},
        }
    }
}
TOOL = {
    "toolConfig": {
        "tools": [{"toolSpec": {"name": TOOL_NAME, "inputSchema": {"json": SCHEMA}}}],
        "toolChoice": {"tool": {"name": TOOL_NAME}},
    }
}


def value_of(output: dict[str, Any]) -> Any:
    block = output["output"]["message"]["content"][0]
    return block["toolUse"]["input"] if "toolUse" in block else json.loads(block["text"])


class TestStructuredEntries:
    def test_each_entry_gets_the_answer_its_online_call_would_and_is_billed_at_batch(
        self,
    ) -> None:
        for model, structured in ((HAIKU, JSON_SCHEMA), (MICRO, TOOL)):
            entries = [entry(i, structured) for i in range(6)]
            billing, faults = BillingLog(), FaultInjector(EmulatorConfig(seed=1))
            lines, counts = answer_entries(job(model), entries, faults, Counter(), billing)
            assert counts["successRecordCount"] == 6
            for line in lines:
                body = entries[int(line["recordId"])]["modelInput"]
                online = respond(model, parse_request(body), ask_of(model, body), faults, Counter())
                assert line["modelOutput"]["output"] == online.body(0.0)["output"]
                assert line["modelOutput"]["usage"] == online.body(0.0)["usage"]
                Draft202012Validator(SCHEMA).validate(value_of(line["modelOutput"]))
            assert {e["service_tier"] for e in billing.entries(0)} == {"batch"}
            assert len(billing.entries(0)) == 6

    def test_a_share_of_invalid_answers_is_drawn_counted_and_billed(self) -> None:
        entries = [entry(i, TOOL) for i in range(20)]
        faults = FaultInjector(EmulatorConfig(invalid_output_rate=1.0))
        stats: Counter[str] = Counter()
        billing = BillingLog()
        lines, _ = answer_entries(job(MICRO), entries, faults, stats, billing)
        assert stats["invalid_output"] == 20
        validator = Draft202012Validator(SCHEMA)
        assert not any(validator.is_valid(value_of(line["modelOutput"])) for line in lines)
        assert len(billing.entries(0)) == 20
