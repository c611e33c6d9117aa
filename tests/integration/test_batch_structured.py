"""Batch mode with structured and judge steps, on the real stack.

The template of ``test_structured_outputs``: ``facts`` answers a JSON Schema
(Nova Micro: forced tool use), ``tip`` reads ``steps.facts.output.city`` and
``population``, ``grade`` judges the tip (Haiku: Converse structured output),
and ``keep_if`` keeps the good scores. In batch mode each step's entries carry
the structured request and their answers are checked as online: the emulator
makes a share of them invalid, and those are asked again in a later round
(online here, as they are fewer than a batch takes) until valid or rejected as
``invalid_output``. Every answer, invalid ones included, is billed, and the
ledger must equal the billing log.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from palette.devstack.client import GatewayClient
from palette.devstack.emulator_client import EmulatorControl
from palette.devstack.stack import DevStack
from tests.integration.jobs import HAIKU, assert_ledger_matches_billing, start
from tests.integration.test_batch_jobs import batch_jobs_of
from tests.integration.test_structured_outputs import (
    FACTS_TYPE,
    GRADE_TYPE,
    TEMPLATE,
    assert_all_rejected_invalid,
    invalid_at,
    kept_and_rejected,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

TRIES = 3
"""The generator's ``max_output_attempts`` (its default)."""


@pytest.fixture
def control(devstack: DevStack) -> Iterator[EmulatorControl]:
    control = devstack.emulator_control()
    yield control
    control.reset()


def entry_prompts(s3: Any, bucket: str, job_id: str) -> dict[str, dict[int, str]]:
    """The prompts the job's batch entries carried, by step (told by its first words)."""
    prefix = f"jobs/{job_id}/batch/"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    prompts: dict[str, dict[int, str]] = {}
    for key in (o["Key"] for o in listed if o["Key"].endswith("/input.jsonl")):
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        for entry in (json.loads(line) for line in body.splitlines() if line):
            text = entry["modelInput"]["messages"][0]["content"][0]["text"]
            step = {"Facts": "facts", "A tip": "tip", "Tip:": "grade"}
            found = next(v for k, v in step.items() if text.startswith(k))
            prompts.setdefault(found, {})[int(entry["recordId"])] = text
    return prompts


class TestStructuredBatchJob:
    def test_schema_step_feeds_a_later_step_and_a_judge_filters_with_invalid_answers_retried(
        self, api: GatewayClient, devstack: DevStack, mongo: Any, s3: Any, control: EmulatorControl
    ) -> None:
        n = 150
        before = control.stats().get("invalid_output", 0)
        control.configure(invalid_output_rate=0.1, seed=17)
        _, _, job = start(
            api,
            n,
            TEMPLATE,
            mode="batch",
            partition_size=n,
            budget_usd="5",
            output_format="parquet",
            keep_if="steps.grade.output.score >= 3",
        )
        final = api.wait(job["id"], timeout=200)
        assert final["status"] == "COMPLETED", final
        invalid = control.stats().get("invalid_output", 0) - before
        assert invalid > 0, "the emulator made some answers invalid"

        table, kept, rejected = kept_and_rejected(api, job["id"])
        assert sorted(row["index"] for row in kept + rejected) == list(range(n))
        assert kept, "some records are kept"
        assert all(row["grade"]["score"] >= 3 for row in kept)
        assert {row["rejected_reason"] for row in rejected} <= {"keep_if", "invalid_output"}
        judged = [row for row in rejected if row["rejected_reason"] == "keep_if"]
        assert judged, "some scores are below the filter's"
        assert all(row["grade"]["score"] < 3 for row in judged)
        assert table.schema.field("facts").type == FACTS_TYPE
        assert table.schema.field("grade").type == GRADE_TYPE

        # The tip step's entries were rendered from the facts' fields.
        tips = entry_prompts(s3, devstack.bucket, job["id"])["tip"]
        for row in kept:
            facts = row["facts"]
            assert tips[row["index"]] == (
                f"A tip for {facts['city']} (population {facts['population']})."
            )

        billed = control.billing(job_id=job["id"])
        # Most answers come from batch jobs; the few asked again are called online.
        assert {entry["service_tier"] for entry in billed} == {"batch", "default"}
        assert len(batch_jobs_of(control, job["id"])) == 3  # one per step
        doc = assert_ledger_matches_billing(devstack, mongo, job["id"])
        lost = invalid_at(rejected)  # rare: every answer allowed invalid
        structured = doc["by_step"]["facts"]["calls"] + doc["by_step"]["grade"]["calls"]
        assert structured == 2 * n - 2 * lost["facts"] - lost["grade"] + invalid
        assert doc["by_step"]["tip"]["calls"] == n - lost["facts"]
        # Each invalid answer was asked again (a retry) but a record's last one.
        assert doc["retried_calls"] == invalid - sum(lost.values())

    def test_records_whose_every_answer_is_invalid_are_rejected_after_batch_rounds(
        self, api: GatewayClient, devstack: DevStack, mongo: Any, control: EmulatorControl
    ) -> None:
        n = 120  # a batch's worth every round: invalid answers are asked again in batches
        grade = {
            "id": "grade",
            "kind": "judge",
            "model": HAIKU,
            "prompt": "Tip: use {{ product }} daily.",
            "rubric": "Is the tip useful?",
            "max_tokens": 100,
        }
        control.configure(invalid_output_rate=1.0)
        _, _, job = start(
            api, n, {"name": "judge-only", "steps": [grade]}, mode="batch", partition_size=n
        )
        final = api.wait(job["id"], timeout=200)
        assert final["status"] == "COMPLETED", final
        assert_all_rejected_invalid(api, job["id"], n, f"'grade': no valid output in {TRIES} calls")
        billed = control.billing(job_id=job["id"])
        assert len(billed) == n * TRIES, "every invalid answer is billed"
        # The first two rounds are batches; the lease, sized for one answer per record,
        # may hold too few worst cases for a third: those are called online.
        assert len(batch_jobs_of(control, job["id"])) >= 2
        assert {entry["service_tier"] for entry in billed} <= {"batch", "default"}
        doc = assert_ledger_matches_billing(devstack, mongo, job["id"])
        assert doc["retried_calls"] == n * (TRIES - 1)
