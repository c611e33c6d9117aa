"""Batch mode's structured steps: the entries ask as online calls do, answers are checked.

A structured step's batch entry carries the same request fields as its online
Converse call; its answer (a Converse response body in the output) is parsed
and checked against the schema as online; an invalid one is billed, counted
as orphan usage and asked again, until the record has had ``attempts`` answers
and is rejected as ``invalid_output``.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from palette.common.output_schema import TOOL_NAME
from palette.common.pricing import load_pricing
from palette.common.service_tiers import rated_table
from palette.common.steps import Step
from palette.common.structured_support import load_support
from palette.generator.batch_answers import StepAnswers
from palette.generator.batch_run import model_input
from palette.generator.batch_store import Submission
from palette.generator.bedrock import ModelRequest, converse_body
from palette.generator.budget import LeaseGuard
from palette.generator.records import FinishedRecord
from palette.generator.structured import for_step
from palette.generator.usage import UsageTally
from tests.unit.test_batch_resume import submission

pytestmark = pytest.mark.unit

MICRO = "amazon.nova-micro-v1:0"  # forced tool use
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"  # Converse structured output
SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
    "required": ["city", "population"],
}
FACTS = Step(id="facts", model=MICRO, prompt="Facts.", output_schema=SCHEMA, max_tokens=100)
GRADE = Step(id="grade", model=HAIKU, prompt="Grade.", kind="judge", rubric="Clear?")
TEXT = Step(id="line", model=MICRO, prompt="Write one line.", max_tokens=40, temperature=0.2)


class TestModelInput:
    def test_a_text_entry_is_the_plain_converse_body(self) -> None:
        assert model_input(TEXT, "Write one line.", "Be short.", None) == {
            "messages": [{"role": "user", "content": [{"text": "Write one line."}]}],
            "inferenceConfig": {"maxTokens": 40, "temperature": 0.2},
            "system": [{"text": "Be short."}],
        }

    def test_a_tool_use_models_entry_forces_the_tool_with_the_schema(self) -> None:
        body = model_input(FACTS, "Facts.", None, for_step(FACTS, load_support(None)))
        tools = body["toolConfig"]
        assert tools["toolChoice"] == {"tool": {"name": TOOL_NAME}}
        assert tools["tools"][0]["toolSpec"]["inputSchema"] == {"json": SCHEMA}
        assert "outputConfig" not in body

    def test_a_judge_entry_asks_for_structured_output_as_its_online_call(self) -> None:
        output = for_step(GRADE, load_support(None))
        system = GRADE.call_system(None)
        body = model_input(GRADE, "Grade.", system, output)
        online = converse_body(
            ModelRequest(
                model_id=HAIKU,
                prompt="Grade.",
                system=system,
                max_tokens=GRADE.max_tokens,
                temperature=GRADE.temperature,
                metadata={"job_id": "j"},
                output=output,
            )
        )
        assert body["outputConfig"]["textFormat"]["type"] == "json_schema"
        assert body == {k: v for k, v in online.items() if k != "requestMetadata"}


def facts_answers(indexes: list[int], attempts: int = 3) -> StepAnswers:
    """The answers of a tool use step in an attempt, as far as applying a batch's output needs."""
    retried: list[int] = []
    state = SimpleNamespace(
        msg=SimpleNamespace(lease_id="lease", job_id="job"),
        guard=LeaseGuard(10**12),
        prices={MICRO: rated_table(load_pricing(), "batch").price(MICRO)},
        usage=UsageTally(),
        orphan=UsageTally(),
        retried=retried,
        count_retries=lambda retried=0: state.retried.append(retried),
    )
    records = {i: FinishedRecord(index=i, seed_index=i) for i in indexes}
    output = for_step(FACTS, load_support(None))
    return StepAnswers(state, FACTS, output, records, set(), attempts)  # type: ignore[arg-type]


def tool_answer(index: int, value: dict[str, Any]) -> dict[str, Any]:
    """An output line whose entry answered with a tool use (Converse's response body)."""
    block = {"toolUse": {"toolUseId": f"t{index}", "name": TOOL_NAME, "input": value}}
    return {
        "recordId": f"{index:011d}",
        "modelOutput": {
            "output": {"message": {"role": "assistant", "content": [block]}},
            "stopReason": "tool_use",
            "usage": {"inputTokens": 100, "outputTokens": 20},
        },
    }


def job(records: tuple[int, ...]) -> Submission:
    """A batch job of this attempt's lease (its step is not read in applying it)."""
    return submission("lease", records)


def reserve(answers: StepAnswers, indexes: list[int]) -> dict[int, Any]:
    return {i: answers.state.guard.reserve(10**9) for i in indexes}


class TestStructuredAnswers:
    def test_a_valid_answer_gives_the_record_the_json_value(self) -> None:
        answers = facts_answers([0])
        value = {"city": "Lyon", "population": 500000}
        answers.apply(job((0,)), [tool_answer(0, value)], {}, reserve(answers, [0]))
        record = answers.records[0]
        assert record.outputs == {"facts": value}
        assert record.usage == {"facts": (100, 20)}
        assert answers.todo() == []
        assert answers.state.orphan.calls == 0

    def test_an_invalid_answer_is_billed_as_orphan_usage_and_asked_again_as_a_retry(
        self,
    ) -> None:
        answers = facts_answers([0, 1])
        lines = [
            tool_answer(0, {"city": "Lyon"}),
            tool_answer(1, {"city": "Oslo", "population": 7}),
        ]
        answers.apply(job((0, 1)), lines, {}, reserve(answers, [0, 1]))
        state = answers.state
        price = state.prices[MICRO]
        assert state.guard.spent == 2 * price.cost(100, 20)  # both answers are billed
        assert state.usage.calls == 2
        assert state.orphan.calls == 1  # the invalid one: in no record's usage
        assert answers.records[0].outputs == {}
        assert answers.todo() == [0]
        answers.asking([0])
        assert state.retried == [1]
        answers.asking([0])  # asked again after a failed entry: not another retry
        assert state.retried == [1]
        answers.apply(
            job((0,)),
            [tool_answer(0, {"city": "Lyon", "population": 9})],
            {},
            reserve(answers, [0]),
        )
        assert answers.records[0].outputs["facts"]["population"] == 9
        assert answers.records[0].invalid is None

    def test_the_last_invalid_answer_rejects_the_record_as_invalid_output(self) -> None:
        answers = facts_answers([0], attempts=2)
        for _ in range(2):
            assert answers.todo() == [0]
            answers.apply(job((0,)), [tool_answer(0, {})], {}, reserve(answers, [0]))
        record = answers.records[0]
        assert record.invalid is not None
        assert record.invalid["step"] == "facts"
        assert "'facts': no valid output in 2 calls" in record.invalid["error"]
        assert answers.todo() == []
        assert answers.state.orphan.calls == 2
        assert answers.rounds(5) == 6  # one round more than failures allow, to ask again

    def test_a_resumed_record_is_asked_only_the_answers_left(self) -> None:
        answers = facts_answers([0, 1])
        answers.records[0].invalid_answers = {"facts": 2}  # from an earlier attempt
        answers.apply(
            job((0, 1)), [tool_answer(0, {}), tool_answer(1, {})], {}, reserve(answers, [0, 1])
        )
        assert answers.records[0].invalid is not None
        assert "no valid output in 3 calls" in answers.records[0].invalid["error"]
        assert answers.records[1].invalid is None
        assert answers.records[1].invalid_answers == {"facts": 1}
        assert answers.todo() == [1]
        assert answers.to_keep == {0, 1}  # kept with their counts if the attempt ends here
