"""The export's salvage of batch jobs no attempt applied reads answers as an attempt does
(pure logic: the storage, batch client and seed draws are in-memory fakes)."""

from __future__ import annotations

from typing import Any

import pytest

from palette.generator.batch_salvage import Salvage
from palette.generator.batch_store import Submission
from palette.generator.records import FinishedRecord
from palette.generator.structured import StructuredOutput

pytestmark = pytest.mark.unit

SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}


class FakeStorage:
    def __init__(self) -> None:
        self.written: dict[int, FinishedRecord] = {}

    def part_keys(self, job_id: str) -> list[str]:
        return []

    def read_incomplete(self, job_id: str, start: int, end: int) -> dict[int, FinishedRecord]:
        return {}

    def put_incomplete(self, job_id: str, record: FinishedRecord) -> None:
        self.written[record.index] = record


class FakeClient:
    def __init__(self, lines: list[dict[str, Any]]) -> None:
        self.lines = lines

    def status(self, arn: str) -> dict[str, Any]:
        return {"status": "Stopped"}

    def output_of(self, submission: Submission) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        return self.lines, {}


class FakeDraws:
    job_id = "job-1"

    def position(self, index: int) -> int:
        return index

    def record(self, index: int, position: int) -> FinishedRecord:
        return FinishedRecord(index=index, seed_index=position)


def line(index: int, content: list[dict[str, Any]]) -> dict[str, Any]:
    output = {
        "output": {"message": {"role": "assistant", "content": content}},
        "usage": {"inputTokens": 10, "outputTokens": 5},
        "stopReason": "tool_use",
    }
    return {"recordId": str(index), "modelOutput": output}


def submission(records: tuple[int, ...]) -> Submission:
    return Submission(
        token="t",
        job_id="job-1",
        partition=0,
        step="facts",
        model_id="m",
        records=records,
        input_key="in",
        output_prefix="out",
        lease_id="lease-1",
        arn="arn:1",
    )


def test_a_structured_steps_answers_are_parsed_and_invalid_ones_left_out() -> None:
    tool = StructuredOutput(mode="tool", schema=SCHEMA, text="{}")
    lines = [
        line(0, [{"toolUse": {"toolUseId": "u", "name": "answer", "input": SCHEMA_OK}}]),
        line(1, [{"toolUse": {"toolUseId": "u", "name": "answer", "input": {"city": 3}}}]),
        {"recordId": "2", "error": {"errorCode": 500, "errorMessage": "failed"}},
    ]
    storage = FakeStorage()
    salvage = Salvage(storage, FakeClient(lines), FakeDraws(), {"facts": tool, "tip": None})  # type: ignore[arg-type]
    assert salvage.apply(submission((0, 1, 2)))
    assert salvage.write() == 1
    [record] = storage.written.values()
    assert (record.index, record.outputs, record.complete) == (0, {"facts": SCHEMA_OK}, False)
    assert record.usage == {"facts": (10, 5)}


def test_a_text_steps_answers_are_their_text() -> None:
    lines = [line(4, [{"text": "Lisbon"}])]
    storage = FakeStorage()
    salvage = Salvage(storage, FakeClient(lines), FakeDraws(), {"facts": None})  # type: ignore[arg-type]
    assert salvage.apply(submission((4,)))
    assert salvage.write() == 1
    assert (storage.written[4].outputs, storage.written[4].complete) == ({"facts": "Lisbon"}, True)


SCHEMA_OK = {"city": "Lisbon", "population": 545000}
