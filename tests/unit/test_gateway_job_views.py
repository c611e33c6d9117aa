"""The job document, its SubmitJob and its API view."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from palette.common.ledger_view import LedgerView
from palette.common.messages import JobStatus, OutputFormat
from palette.gateway.job_views import (
    decimal_string,
    job_view,
    new_job_document,
    submit_message,
    usd_string,
)
from palette.gateway.schemas import CreateJob
from palette.gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
STEPS = [
    {
        "id": "q",
        "model": "anthropic.claude-haiku-4-5-20251001-v1:0",
        "prompt": "About {{ topic }}",
        "system": None,
        "max_tokens": 256,
        "temperature": 0.5,
    }
]
TEMPLATE: dict[str, Any] = {
    "_id": "t1:2",
    "template_id": "t1",
    "version": 2,
    "owner": "alice",
    "steps": STEPS,
    "schema_requirements": ["topic"],
}


def _doc(**overrides: Any) -> dict[str, Any]:
    request = CreateJob.model_validate(
        {
            "template_id": "t1",
            "seed_key": "seed-data/alice/s.jsonl",
            "num_records": 50,
            "budget_usd": "40.00",
            "output_format": "parquet",
            **overrides,
        }
    )
    return new_job_document(job_id="j1", owner="alice", request=request, template=TEMPLATE, now=NOW)


class TestJobDocument:
    def test_has_exactly_the_documented_fields(self) -> None:
        doc = _doc()
        assert set(doc) == {
            "_id", "owner", "template", "template_id", "template_version",
            "schema_requirements", "seed_key", "num_records", "budget_usd", "budget_picos",
            "output_format", "partition_size", "priority", "status", "created_at",
            "updated_at", "started_at", "finished_at", "error", "records_done", "seed_count",
            "partitions_total", "in_flight", "export", "submit_published", "seed_sampling",
            "keep_if", "dedup", "target", "max_generated", "mode", "service_tier",
        }  # fmt: skip

    def test_starts_queued_with_nothing_done_and_unpublished(self) -> None:
        doc = _doc()
        assert doc["status"] == "QUEUED"
        assert (doc["records_done"], doc["in_flight"], doc["export"]) == (0, 0, None)
        assert doc["submit_published"] is False
        assert doc["template"] == {"steps": STEPS, "variables": {}, "keep_if": None}
        assert doc["seed_sampling"] == "uniform"
        assert (doc["template_id"], doc["template_version"]) == ("t1", 2)

    def test_partition_size_is_the_requests_or_null_for_the_scheduler_to_decide(self) -> None:
        assert _doc()["partition_size"] is None
        assert _doc(partition_size=20)["partition_size"] == 20
        assert not [name for name in GatewaySettings.model_fields if "partition" in name]

    def test_budget_is_a_string_and_exact_picodollars(self) -> None:
        doc = _doc(budget_usd="12.345678901234")
        assert doc["budget_usd"] == "12.345678901234"
        assert doc["budget_picos"] == 12_345_678_901_234
        assert _doc()["budget_usd"] == "40"


class TestSubmitMessage:
    def test_rebuilds_the_same_message_from_the_document(self) -> None:
        doc = _doc(priority=3)
        doc["partition_size"] = 10
        first, again = submit_message(doc), submit_message(doc)
        assert first == again
        assert first.message_id == "submit-j1"
        assert first.budget_usd == Decimal(40)
        assert first.output_format is OutputFormat.PARQUET
        assert (first.priority, first.partition_size) == (3, 10)
        assert first.template.steps[0].max_tokens == 256


class TestJobView:
    def test_without_a_ledger_nothing_is_spent(self) -> None:
        view = job_view(_doc(), None)
        assert (view.cost_usd, view.reserved_usd, view.budget_usd) == ("0", "0", "40")
        assert view.status is JobStatus.QUEUED
        assert view.export is None

    def test_cost_comes_from_the_ledger_spent_in_picodollars(self) -> None:
        ledger = LedgerView(budget=40 * 10**12, spent=1_500_000_000_001, reserved=2 * 10**12)
        view = job_view(_doc(), ledger)
        assert view.cost_usd == "1.500000000001"
        assert view.reserved_usd == "2"
        assert view.remaining_usd == "36.499999999999"

    def test_shows_the_export_once_written(self) -> None:
        doc = _doc()
        doc["export"] = {"status": "PENDING", "key": None, "records": None, "bytes": None}
        assert job_view(doc, None).export is None
        doc["export"] = {
            "status": "DONE",
            "key": "jobs/j1/export/dataset.parquet",
            "records": 50,
            "bytes": 1234,
            "format": "parquet",
        }
        export = job_view(doc, None).export
        assert export is not None
        assert (export.records, export.bytes, export.format) == (50, 1234, OutputFormat.PARQUET)

    def test_is_settled_once_ended_and_its_export_written_or_failed(self) -> None:
        doc = _doc()
        doc["partitions_total"] = 3
        assert not job_view(doc, None).settled  # queued
        doc["status"] = JobStatus.CANCELLED.value
        assert not job_view(doc, None).settled  # export still to be asked for
        doc["export"] = {"status": "PENDING"}
        pending = job_view(doc, None)
        assert not pending.settled
        doc["export"] = {
            "status": "DONE",
            "key": "k",
            "records": 1,
            "bytes": 1,
            "format": "parquet",
        }
        done = job_view(doc, None)
        assert done.settled
        assert done.etag != pending.etag  # what a DELETE with the earlier ETag meets: 412
        doc["export"] = {"status": "FAILED"}
        assert job_view(doc, None).settled
        never_started = _doc()
        never_started["status"] = JobStatus.FAILED.value
        assert job_view(never_started, None).settled  # no partitions: no export to wait for


class TestMoneyStrings:
    @pytest.mark.parametrize(
        ("picos", "text"),
        [
            (0, "0"),
            (1, "0.000000000001"),
            (10**12, "1"),
            (100 * 10**12, "100"),
            (25 * 10**10, "0.25"),
        ],
    )
    def test_usd_string_is_plain_decimal(self, picos: int, text: str) -> None:
        assert usd_string(picos) == text

    def test_decimal_string_drops_trailing_zeros(self) -> None:
        assert decimal_string(Decimal("1.500")) == "1.5"
        assert decimal_string(Decimal("1E+2")) == "100"
