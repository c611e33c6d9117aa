"""Batch mode: a batch job resumed from another lease costs the resuming attempt nothing.

The lease a batch job was submitted under reserved its worst case and pays for
it (accounting counts it when that lease is settled, see ``lease_batches``). A
retry that resumes it must not charge it again, nor charge it at all: a charge
outside the guard's reservations could take the retry's lease, and the job's
budget, past the cap.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from palette.common.pricing import load_pricing
from palette.common.service_tiers import rated_table
from palette.common.steps import Step
from palette.generator.batch_answers import StepAnswers
from palette.generator.batch_store import Submission
from palette.generator.budget import LeaseGuard
from palette.generator.records import FinishedRecord
from palette.generator.usage import UsageTally

MICRO = "amazon.nova-micro-v1:0"
STEP = Step(id="line", model=MICRO, prompt="Write one line.", max_tokens=40)


def answered(index: int, tokens_in: int, tokens_out: int) -> dict[str, Any]:
    """An output line of a batch job: the entry answered."""
    return {
        "recordId": f"{index:011d}",
        "modelOutput": {
            "output": {"message": {"content": [{"text": f"line {index}"}]}},
            "usage": {"inputTokens": tokens_in, "outputTokens": tokens_out},
        },
    }


def run_of(lease_id: str, guard: LeaseGuard, indexes: list[int]) -> StepAnswers:
    """A text step's answers in an attempt under ``lease_id``, as far as applying output needs."""
    state = SimpleNamespace(
        msg=SimpleNamespace(lease_id=lease_id, job_id="job"),
        guard=guard,
        prices={MICRO: rated_table(load_pricing(), "batch").price(MICRO)},
        usage=UsageTally(),
    )
    records = {i: FinishedRecord(index=i, seed_index=i) for i in indexes}
    return StepAnswers(state, STEP, None, records, set(), 3)  # type: ignore[arg-type]


def submission(lease_id: str, records: tuple[int, ...]) -> Submission:
    return Submission(
        token="t",
        job_id="job",
        partition=0,
        step=STEP.id,
        model_id=MICRO,
        records=records,
        input_key="jobs/job/batch/0/t/input.jsonl",
        output_prefix="jobs/job/batch/0/t/out/",
        lease_id=lease_id,
        arn="arn:aws:bedrock:us-east-1:0:model-invocation-job/abc",
    )


class TestResumedBatchOfAnotherLease:
    def test_gives_the_outputs_and_charges_nothing_even_with_nothing_left_on_the_lease(
        self,
    ) -> None:
        guard = LeaseGuard(0)  # the retry's lease has nothing left for this job's cost
        run = run_of("retry-lease", guard, [0, 1])
        lines = [answered(0, 120, 30), answered(1, 110, 40)]
        run.apply(submission("lost-lease", (0, 1)), lines, {}, {})
        assert guard.spent == 0  # nothing beyond the lease: the lost lease pays
        assert guard.spent <= guard.amount
        assert run.state.usage.calls == 0
        assert run.records[0].outputs == {"line": "line 0"}
        assert run.records[1].usage == {"line": (110, 40)}  # kept in the record's line
        assert run.records[0].tally().calls == 0  # and not reported under this lease
        assert run.to_keep == {0, 1}


class TestOwnBatch:
    def test_answered_entries_settle_their_reservations_and_count_once(self) -> None:
        guard = LeaseGuard(10**12)
        run = run_of("lease", guard, [0, 1])
        reservations = {0: guard.reserve(10**9), 1: guard.reserve(10**9)}
        run.apply(submission("lease", (0, 1)), [answered(0, 120, 30)], {}, reservations)
        price = rated_table(load_pricing(), "batch").price(MICRO)
        assert guard.spent == price.cost(120, 30)
        assert guard.reserved == 0  # the failed entry's reservation released
        assert run.state.usage.calls == 1
        assert run.records[0].tally().calls == 1
