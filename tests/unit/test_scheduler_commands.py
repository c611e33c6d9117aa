"""What the scheduler sends: the same message, with the same id, each time it is built again."""

from __future__ import annotations

from typing import Any

import pytest

from palette.common import messages as m
from palette.common.samplers import Stratify
from palette.common.templates import TemplateSpec
from palette.scheduler import commands
from palette.scheduler.lifecycle import JobPlan

pytestmark = pytest.mark.unit

SPEC = TemplateSpec.model_validate(
    {"steps": [{"id": "a", "model": "amazon.nova-micro-v1:0", "prompt": "p"}]}
)
PART: dict[str, Any] = {"index": 3, "start": 30, "end": 40, "lease_id": "l7", "needed": 0}


class TestCommands:
    def test_a_lease_request_is_named_after_its_lease(self) -> None:
        first = commands.reserve_budget("j", {**PART, "attempt": 0}, 100)
        again = commands.reserve_budget("j", {**PART, "attempt": 0}, 100)
        assert first.message_id == again.message_id == "reserve-l7"
        assert (first.partition, first.lease_id, first.amount >= first.minimum) == (3, "l7", True)

    def test_an_attempt_is_counted_from_the_partition_before_it(self) -> None:
        granted = m.BudgetReserved(job_id="j", partition=3, lease_id="l7", amount=500)
        plan = JobPlan(SPEC, "k", 9, 100, Stratify(stratify="topic"))
        command = commands.generate_partition(granted, {**PART, "attempt": 1}, plan)
        assert (command.message_id, command.attempt) == ("generate-l7", 2)
        assert (command.start, command.end, command.lease_amount) == (30, 40, 500)
        assert (command.seed_key, command.seed_count) == ("k", 9)
        assert command.seed_sampling == Stratify(stratify="topic")

    def test_a_status_change_is_named_after_the_job_and_its_new_status(self) -> None:
        before = {"_id": "j", "owner": "o", "status": "RUNNING"}
        changed = commands.status_changed(before, m.JobStatus.COMPLETED, None)
        assert changed.message_id == "status-j-COMPLETED"
        assert (changed.previous, changed.owner) == (m.JobStatus.RUNNING, "o")

    def test_a_written_export_keeps_what_the_generator_reported(self) -> None:
        done = m.ExportCompleted(
            job_id="j",
            key="jobs/j/export/dataset.csv",
            records=12,
            incomplete=2,
            bytes=345,
            output_format=m.OutputFormat.CSV,
            rejected=5,
            rejected_reasons={"keep_if": 4, "duplicate": 1},
            rejected_key="jobs/j/export/dataset.rejected.jsonl",
        )
        assert commands.written_export(done) == {
            "key": "jobs/j/export/dataset.csv",
            "records": 12,
            "incomplete": 2,
            "bytes": 345,
            "format": "csv",
            "rejected": 5,
            "rejected_reasons": {"keep_if": 4, "duplicate": 1},
            "rejected_key": "jobs/j/export/dataset.rejected.jsonl",
        }
