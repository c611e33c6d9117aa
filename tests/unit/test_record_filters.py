"""keep_if and dedup: which complete records a job keeps (pure logic)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from palette.common.record_filters import (
    MAX_NEAR_SIGNATURES,
    Dedup,
    RecordFilter,
    check,
    normalise,
)
from palette.common.sandbox import TemplateError
from palette.common.templates import TemplateSpec
from palette.generator.settings import GeneratorSettings

pytestmark = pytest.mark.unit

TEMPLATE = TemplateSpec.model_validate(
    {
        "steps": [
            {"id": "question", "model": "m", "prompt": "{{ topic }}"},
            {"id": "answer", "model": "m", "prompt": "{{ steps.question.output }}"},
        ],
        "variables": {"tone": {"type": "category", "values": ["formal", "casual"]}},
    }
)


def test_keep_if_keeps_what_it_is_true_for_and_names_why_not() -> None:
    keep = RecordFilter('steps.answer.output | length > 10 and vars.tone == "formal"', None)
    assert (
        keep.rejection(0, {"question": "q", "answer": "a long enough answer"}, {"tone": "formal"})
        is None
    )
    assert keep.rejection(1, {"question": "q", "answer": "short"}, {"tone": "formal"}) == (
        "keep_if",
        "keep_if is false",
    )
    assert keep.rejection(
        2, {"question": "q", "answer": "a long enough answer"}, {"tone": "casual"}
    )


def test_an_expression_error_on_one_record_rejects_it_with_the_error() -> None:
    keep = RecordFilter("steps.answer.output | int > 3", None)
    assert keep.rejection(0, {"answer": "7"}, {}) is None
    reason, detail = keep.rejection(1, {"answer": "x"}, {}) or ("", "")
    assert reason == "keep_if"
    assert keep.rejection(2, {"answer": "2"}, {}) == ("keep_if", "keep_if is false")
    keep = RecordFilter("steps.answer.output.missing > 3", None)
    reason, detail = keep.rejection(0, {"answer": "7"}, {}) or ("", "")
    assert (reason, detail.startswith("keep_if failed: UndefinedError")) == ("keep_if", True)


def test_exact_dedup_keeps_the_first_by_index_of_the_same_normalised_text() -> None:
    dedup = RecordFilter(None, Dedup(field="steps.question.output"))
    texts = ["What is an e-bike?", "what is an E-bike", "How fast is it?", "WHAT  is an e bike?!"]
    got = [dedup.rejection(i, {"question": t}, {}) for i, t in enumerate(texts)]
    assert got == [
        None,
        ("duplicate", "duplicate of record 0"),
        None,
        ("duplicate", "duplicate of record 0"),
    ]


def test_near_dedup_catches_reworded_repeats_and_keeps_different_texts() -> None:
    base = "the quick brown fox jumps over the lazy dog near the quiet river bank today"
    near = base + " again"
    other = "a completely different sentence about thermostats and energy saving at home"
    dedup = RecordFilter(None, Dedup(field="steps.answer.output", mode="near", threshold=0.7))
    assert dedup.rejection(0, {"answer": base}, {}) is None
    assert dedup.rejection(1, {"answer": other}, {}) is None
    assert dedup.rejection(2, {"answer": near}, {}) == ("duplicate", "duplicate of record 0")


def test_keep_if_runs_before_dedup_so_a_rejected_record_is_no_first_occurrence() -> None:
    both = RecordFilter("vars.tone == 'formal'", Dedup(field="steps.question.output"))
    assert both.rejection(0, {"question": "same"}, {"tone": "casual"})[0] == "keep_if"  # type: ignore[index]
    assert both.rejection(1, {"question": "same"}, {"tone": "formal"}) is None
    assert both.rejection(2, {"question": "same"}, {"tone": "formal"}) == (
        "duplicate",
        "duplicate of record 1",
    )


@pytest.mark.parametrize(
    ("keep_if", "dedup", "field", "problem"),
    [
        ("steps.grade.output > 3", None, "keep_if", "the template has no step 'grade'"),
        ("steps.answer > 3", None, "keep_if", "use steps.<id>.output"),
        ("vars.mood == 1", None, "keep_if", "no variable of that name"),
        ("topic == 'x'", None, "keep_if", "only steps.<id>.output and vars.<name>"),
        ("steps.answer.output.__class__", None, "keep_if", "private (dunder) attributes"),
        ("steps.answer.output >", None, "keep_if", "syntax error"),
        (None, Dedup(field="steps.grade.output"), "dedup.field", "no step 'grade'"),
        (None, Dedup(field="vars.mood"), "dedup.field", "no variable"),
    ],
)
def test_what_a_kept_record_lacks_is_refused_naming_the_field(
    keep_if: str | None, dedup: Dedup | None, field: str, problem: str
) -> None:
    with pytest.raises(TemplateError) as caught:
        check(TEMPLATE, keep_if, dedup)
    assert caught.value.field == field
    assert problem in caught.value.problem


def test_valid_filters_pass_and_bad_dedup_fields_are_refused() -> None:
    check(TEMPLATE, "steps.answer.output | length > 40", Dedup(field="vars.tone"))
    with pytest.raises(ValidationError, match="should match pattern"):
        Dedup(field="topic")
    with pytest.raises(ValidationError, match="less than or equal to 1"):
        Dedup(field="vars.tone", mode="near", threshold=1.5)


def test_normalise() -> None:
    wide_w = "\uff37"  # FULLWIDTH LATIN CAPITAL LETTER W: NFKC makes it W
    assert normalise(f"  {wide_w}hat's   UP?\n") == normalise("what s up") == "what s up"


def test_a_templates_keep_if_and_the_jobs_both_apply_the_templates_first() -> None:
    keep = RecordFilter('vars.tone == "formal"', None, "steps.answer.output | length > 3")
    assert keep.rejection(0, {"answer": "long"}, {"tone": "formal"}) is None
    assert keep.rejection(1, {"answer": "no"}, {"tone": "formal"}) == (
        "keep_if",
        "template keep_if is false",
    )
    assert keep.rejection(2, {"answer": "long"}, {"tone": "casual"}) == (
        "keep_if",
        "keep_if is false",
    )
    assert keep.rejection(3, {"answer": "no"}, {"tone": "casual"}) == (
        "keep_if",
        "template keep_if is false",
    )
    only_template = RecordFilter(None, None, "vars.tone == 'casual'")
    assert only_template.rejection(0, {}, {"tone": "casual"}) is None
    assert only_template.rejection(1, {}, {"tone": "formal"}) is not None


class TestNearDedupBound:
    """Near dedup keeps at most ``max_signatures`` signatures: the first kept records' by index."""

    BASE = "the quick brown fox jumps over the lazy dog near the quiet river bank today"
    OTHER = "a completely different sentence about thermostats and energy saving at home"
    THIRD = "seven purple kites drifted above the harbour while gulls argued over bread"

    def dedup(self, bound: int) -> RecordFilter:
        near = Dedup(field="steps.answer.output", mode="near", threshold=0.7)
        return RecordFilter(None, near, None, max_signatures=bound)

    def decide(self, keep: RecordFilter, texts: list[str]) -> list[tuple[str, str] | None]:
        return [keep.rejection(i, {"answer": t}, {}) for i, t in enumerate(texts)]

    def test_keeps_no_more_signatures_than_the_bound(self) -> None:
        keep = self.dedup(2)
        texts = [f"record number {i} says something {i * 7919} of its own" for i in range(50)]
        assert self.decide(keep, texts) == [None] * 50
        assert len(keep._sketches) == 2
        assert sorted(keep._sketches) == [0, 1], "the first kept records by index"
        assert keep.unremembered == 48

    def test_later_records_are_still_compared_with_the_remembered_ones(self) -> None:
        got = self.decide(self.dedup(1), [self.BASE, self.OTHER, self.BASE + " again"])
        assert got == [None, None, ("duplicate", "duplicate of record 0")]

    def test_a_repeat_of_a_record_kept_past_the_bound_is_kept(self) -> None:
        got = self.decide(self.dedup(1), [self.BASE, self.OTHER, self.OTHER + " again"])
        assert got == [None, None, None]

    def test_decisions_do_not_depend_on_anything_but_the_records_in_index_order(self) -> None:
        texts = [self.BASE, self.OTHER, self.THIRD, self.BASE + " x", self.THIRD + " y"]
        assert self.decide(self.dedup(2), texts) == self.decide(self.dedup(2), texts)
        assert self.decide(self.dedup(2), texts)[3:] == [
            ("duplicate", "duplicate of record 0"),
            None,
        ]

    def test_the_default_bound_is_the_generator_setting_s_default(self) -> None:
        assert GeneratorSettings().dedup_near_max_signatures == MAX_NEAR_SIGNATURES
        assert RecordFilter(None, None)._max_signatures == MAX_NEAR_SIGNATURES
