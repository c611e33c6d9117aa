"""The one job document: the same whichever service creates it; when its export is settled."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from palette.common.job_document import ExportStatus, export_settled, job_document, job_settled
from palette.common.messages import OutputFormat, SubmitJob
from palette.common.templates import TemplateSpec, analyse
from palette.gateway.job_views import new_job_document, submit_message
from palette.gateway.removal import export_pending
from palette.gateway.schemas import CreateJob
from palette.scheduler import commands
from palette.scheduler.purge import deletable

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
MODEL = "amazon.nova-micro-v1:0"
SPEC = TemplateSpec.model_validate(
    {
        "steps": [
            {"id": "q", "model": MODEL, "prompt": "About {{ topic }} for {{ who.name }}"},
            {"id": "a", "model": MODEL, "prompt": "Answer {{ steps.q.output }}", "system": "Be"},
        ]
    }
)
TEMPLATE: dict[str, Any] = {  # a version as the gateway stores it in ``templates``
    "_id": "t1:2",
    "template_id": "t1",
    "version": 2,
    "owner": "alice",
    "steps": [step.model_dump() for step in SPEC.steps],
    "schema_requirements": analyse(SPEC),
}


def gateway_document(**request: Any) -> dict[str, Any]:
    body = {
        "template_id": "t1",
        "seed_key": "seed-data/alice/s.jsonl",
        "num_records": 50,
        "budget_usd": "40.00",
        "output_format": "parquet",
        **request,
    }
    create = CreateJob.model_validate(body)
    return new_job_document(job_id="j1", owner="alice", request=create, template=TEMPLATE, now=NOW)


class TestOneJobDocument:
    @pytest.mark.parametrize(
        "request_fields",
        [{}, {"partition_size": 7, "priority": 4}, {"budget_usd": "0.000000000001"}],
    )
    def test_the_scheduler_stores_what_the_gateway_stores_for_the_same_submit(
        self, request_fields: dict[str, Any]
    ) -> None:
        by_gateway = gateway_document(**request_fields)
        by_scheduler = commands.submitted_job(submit_message(by_gateway), NOW)
        assert by_gateway.pop("submit_published") is False  # the gateway's outbox publishes it
        assert by_scheduler.pop("submit_published") is True  # the scheduler read it published
        assert by_scheduler == by_gateway

    def test_a_direct_publishers_submit_is_stored_like_the_gateways(self) -> None:
        submit = SubmitJob(
            job_id="j2",
            owner="bob",
            template=SPEC,
            seed_key="seed-data/bob/s.csv",
            num_records=3,
            budget_usd=Decimal("2.50"),
            output_format=OutputFormat.CSV,
        )
        doc = commands.submitted_job(submit, NOW)
        assert doc == job_document(
            submit, schema_requirements=["topic", "who.name"], now=NOW, submit_published=True
        )
        assert (doc["budget_usd"], doc["budget_picos"]) == ("2.5", 2_500_000_000_000)
        assert (doc["template_id"], doc["template_version"], doc["partition_size"]) == (
            None,
            None,
            None,
        )
        assert doc["template"] == SPEC.model_dump(mode="json")

    def test_a_template_that_does_not_parse_needs_no_seed_fields_until_the_job_is_refused(
        self,
    ) -> None:
        bad = TemplateSpec.model_validate({"steps": [{"id": "q", "model": MODEL, "prompt": "{{"}]})
        submit = SubmitJob(
            job_id="j3", owner="bob", template=bad, seed_key="k", num_records=1, budget_usd=1
        )
        assert commands.submitted_job(submit, NOW)["schema_requirements"] == []


def job(status: str, export: dict[str, Any] | None, total: int | None = 2) -> dict[str, Any]:
    return {"_id": "j", "status": status, "export": export, "partitions_total": total}


SETTLED_CASES = [
    (job("RUNNING", None), False, False),  # its export is still to come
    (job("QUEUED", None, total=None), True, False),  # not started: no export yet
    (job("CANCELLED", None), False, False),  # waiting for its leases to close
    (job("CANCELLED", {"status": "PENDING"}), False, False),
    (job("COMPLETED", {"status": "DONE", "key": "k"}), True, True),
    (job("FAILED", {"status": "FAILED", "error": "disk"}), True, True),
    (job("FAILED", None, total=0), True, True),  # refused before it started
    (job("FAILED", None, total=None), True, True),
]


class TestExportSettled:
    @pytest.mark.parametrize(("doc", "export", "whole"), SETTLED_CASES)
    def test_settled_once_written_failed_or_never_to_come(
        self, doc: dict[str, Any], export: bool, whole: bool
    ) -> None:
        assert export_settled(doc) is export
        assert job_settled(doc) is whole

    @pytest.mark.parametrize(("doc", "export", "whole"), SETTLED_CASES)
    def test_the_gateway_and_the_scheduler_answer_with_the_one_rule(
        self, doc: dict[str, Any], export: bool, whole: bool
    ) -> None:
        assert export_pending(doc) is not export
        assert deletable(doc) is whole

    def test_export_statuses_are_stored_as_the_strings_they_always_were(self) -> None:
        assert [status.value for status in ExportStatus] == ["PENDING", "DONE", "FAILED"]
