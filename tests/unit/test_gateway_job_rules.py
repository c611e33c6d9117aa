"""Rules of job removal, idempotency fingerprints, seed validation reports and purges."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from palette.common.messages import OutputFormat
from palette.common.seeds import SeedFormat, read_records
from palette.gateway.job_actions import IDEMPOTENCY_KEY, fingerprint
from palette.gateway.removal import (
    Removal,
    cancel_outcome,
    export_pending,
    if_match_allows,
    job_etag,
    parse_entity_tags,
    removal,
)
from palette.gateway.schemas import CancelOutcome, CreateJob
from palette.gateway.seedfiles import validate_records
from palette.scheduler.purge import deletable

pytestmark = pytest.mark.unit


def body(**changes: object) -> CreateJob:
    data: dict[str, object] = {
        "template_id": "t",
        "seed_key": "seed-data/u/s.jsonl",
        "num_records": 10,
        "budget_usd": "2.5",
        "output_format": "jsonl",
    }
    data.update(changes)
    return CreateJob.model_validate(data)


class TestRemoval:
    @pytest.mark.parametrize(
        ("job", "pending"),
        [
            ({"export": {"status": "PENDING"}}, True),
            ({"export": None, "partitions_total": 3}, True),  # waiting for leases to close
            ({"export": None, "partitions_total": None}, False),  # never started
            ({"export": {"status": "DONE"}}, False),
            ({"export": {"status": "FAILED"}}, False),
        ],
    )
    def test_export_pending(self, job: dict[str, object], pending: bool) -> None:
        assert export_pending(job) is pending

    @pytest.mark.parametrize(
        ("job", "ok"),
        [
            ({"status": "RUNNING", "export": None}, False),
            ({"status": "QUEUED", "export": None}, False),
            ({"status": "COMPLETED", "export": {"status": "DONE"}}, True),
            ({"status": "CANCELLED", "export": {"status": "PENDING"}}, False),
            ({"status": "CANCELLED", "export": None, "partitions_total": 2}, False),
            ({"status": "FAILED", "export": None, "partitions_total": None}, True),
        ],
    )
    def test_the_scheduler_deletes_only_settled_finished_jobs(
        self, job: dict[str, object], ok: bool
    ) -> None:
        assert deletable(job) is ok


def job(status: str, export: dict[str, object] | None = None, **extra: object) -> dict[str, object]:
    return {"_id": "job-1", "status": status, "export": export, "partitions_total": 2, **extra}


DONE = {"status": "DONE", "key": "k", "records": 3, "bytes": 10}


class TestJobETag:
    def test_changes_with_status_and_export_but_not_with_progress(self) -> None:
        running = job_etag(job("RUNNING", records_done=3))
        assert running == job_etag(job("RUNNING", records_done=90, in_flight=4))
        tags = {
            running,
            job_etag(job("COMPLETED", {"status": "PENDING"})),
            job_etag(job("COMPLETED", DONE)),
            job_etag(job("CANCELLED", None)),
            job_etag(job("CANCELLED", DONE)),
            job_etag({**job("RUNNING"), "_id": "job-2"}),
        }
        assert len(tags) == 6

    def test_is_a_quoted_strong_entity_tag(self) -> None:
        tag = job_etag(job("RUNNING"))
        assert tag.startswith('"')
        assert tag.endswith('"')
        assert parse_entity_tags(tag) == [(False, tag.strip('"'))]


class TestIfMatch:
    TAG = '"abc123"'

    @pytest.mark.parametrize(
        ("header", "allowed"),
        [
            (None, True),
            ("*", True),
            (' "abc123" ', True),
            ('"other", "abc123"', True),
            ('"other"', False),
            ('W/"abc123"', False),  # a weak tag never matches (strong comparison)
            ('"abc1234"', False),
        ],
    )
    def test_strong_comparison(self, header: str | None, allowed: bool) -> None:
        assert if_match_allows(header, self.TAG) is allowed

    @pytest.mark.parametrize("header", ["abc123", '"abc', '"a" "b"', "", " , ", '"a",,"b"'])
    def test_a_malformed_header_is_refused_naming_the_form(self, header: str) -> None:
        with pytest.raises(ValueError, match="entity tag"):
            if_match_allows(header, self.TAG)


class TestRemovalDecision:
    @pytest.mark.parametrize(
        ("state", "action"),
        [
            (job("QUEUED"), Removal.CANCEL),
            (job("RUNNING"), Removal.CANCEL),
            (job("COMPLETED", {"status": "PENDING"}), Removal.EXPORT_PENDING),
            (job("CANCELLED", None), Removal.EXPORT_PENDING),  # leases still closing
            (job("COMPLETED", DONE), Removal.DELETE),
            (job("FAILED", None, partitions_total=None), Removal.DELETE),
            (job("BUDGET_EXCEEDED", DONE), Removal.DELETE),
        ],
    )
    def test_without_if_match_acts_on_the_state_now(
        self, state: dict[str, object], action: Removal
    ) -> None:
        assert removal(state, None) is action
        assert removal(state, job_etag(state)) is action
        assert removal(state, "*") is action

    def test_a_delete_meant_for_the_running_job_never_deletes_the_finished_one(self) -> None:
        seen = job_etag(job("RUNNING"))
        for later in (job("COMPLETED", {"status": "PENDING"}), job("COMPLETED", DONE)):
            assert removal(later, seen) is Removal.PRECONDITION_FAILED
        assert removal(job("RUNNING"), seen) is Removal.CANCEL

    def test_a_stale_tag_of_a_finished_job_fails_too(self) -> None:
        pending = job_etag(job("COMPLETED", {"status": "PENDING"}))
        assert removal(job("COMPLETED", DONE), pending) is Removal.PRECONDITION_FAILED


class TestCancelDecision:
    @pytest.mark.parametrize(
        ("status", "outcome"),
        [
            ("QUEUED", CancelOutcome.CANCEL_REQUESTED),
            ("RUNNING", CancelOutcome.CANCEL_REQUESTED),
            ("COMPLETED", CancelOutcome.ALREADY_ENDED),
            ("FAILED", CancelOutcome.ALREADY_ENDED),
            ("CANCELLED", CancelOutcome.ALREADY_ENDED),
            ("BUDGET_EXCEEDED", CancelOutcome.ALREADY_ENDED),
        ],
    )
    def test_only_a_queued_or_running_job_is_cancelled(
        self, status: str, outcome: CancelOutcome
    ) -> None:
        assert cancel_outcome(job(status)) is outcome


class TestIdempotency:
    def test_same_request_same_fingerprint_and_any_change_another(self) -> None:
        assert fingerprint(body()) == fingerprint(body(budget_usd=Decimal("2.50")))
        assert fingerprint(body()) != fingerprint(body(num_records=11))
        assert fingerprint(body()) != fingerprint(body(output_format=OutputFormat.CSV))

    @pytest.mark.parametrize(("key", "ok"), [("k-1", True), ("", False), ("a b", False)])
    def test_keys_are_visible_ascii(self, key: str, ok: bool) -> None:
        assert bool(IDEMPOTENCY_KEY.match(key)) is ok


class TestSeedValidation:
    def test_counts_every_record_and_keeps_the_first_examples(self) -> None:
        lines = [b'{"a": {"b": 1}, "c": 2}'] + [b'{"c": 1}'] * 7 + [b'{"a": {"b": 2}}']
        records = read_records(io.BytesIO(b"\n".join(lines) + b"\n"), SeedFormat.JSONL)
        report = validate_records(records, ["a.b", "c"], examples=3)
        assert (report.records_checked, report.records_missing_fields) == (9, 8)
        assert report.examples == [(2, ["a.b"]), (3, ["a.b"]), (4, ["a.b"])]
        assert not report.valid

    def test_stops_at_the_first_parse_error_with_its_line(self) -> None:
        data = b'{"a": 1}\n\n{"a": 2}\n{broken\n{"a": 3}\n'
        report = validate_records(read_records(io.BytesIO(data), SeedFormat.JSONL), ["a"], 5)
        assert report.records_checked == 2
        assert report.parse_error is not None
        assert (report.parse_error.line, report.parse_error.record) == (4, 3)
        assert not report.valid

    def test_a_good_csv_is_valid(self) -> None:
        data = b"a,c\n1,2\n3,4\n"
        report = validate_records(read_records(io.BytesIO(data), SeedFormat.CSV), ["a"], 5)
        assert (report.valid, report.records_checked) == (True, 2)
