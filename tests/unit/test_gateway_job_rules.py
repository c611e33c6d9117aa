"""Rules of job removal, idempotency fingerprints, seed validation reports and purges."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from palette.common.messages import OutputFormat
from palette.common.seeds import SeedFormat, read_records
from palette.gateway.job_service import IDEMPOTENCY_KEY, export_pending, fingerprint
from palette.gateway.schemas import CreateJob
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
