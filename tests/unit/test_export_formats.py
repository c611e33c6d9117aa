"""Export rows, schema and the three dataset formats, written to memory."""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from palette.common.messages import OutputFormat
from palette.common.templates import Step
from palette.generator.dataset_export import ExportError, write_dataset
from palette.generator.format_writers import Bitmap, ColumnPlan, make_writer
from palette.generator.records import FinishedRecord, encode_part
from palette.generator.storage import MultipartSink, Storage

pytestmark = pytest.mark.unit

STEPS = (
    Step(id="question", model="m1", prompt="{{ topic }}"),
    Step(id="answer", model="m2", prompt="{{ steps.question.output }}"),
)


def stopped(index: int) -> FinishedRecord:
    """A record whose second step never ran."""
    return FinishedRecord(
        index=index,
        seed_index=index % 5,
        outputs={"question": f"q{index}"},
        models={"question": "m1"},
        usage={"question": (10 + index, 20)},
        complete=False,
    )


def record(index: int, text: str = "") -> FinishedRecord:
    return FinishedRecord(
        index=index,
        seed_index=index % 5,
        outputs={"question": f'q{index}, "quoted"\nnew line {text}', "answer": f"a{index} é"},
        models={"question": "m1", "answer": "m2"},
        usage={"question": (10 + index, 20), "answer": (30, 40 + index)},
    )


class TestColumnPlan:
    def test_columns_are_ids_outputs_then_typed_metadata(self) -> None:
        assert ColumnPlan(STEPS).names == [
            "id",
            "index",
            "seed_index",
            "complete",
            "question",
            "answer",
            "question_model",
            "question_input_tokens",
            "question_output_tokens",
            "answer_model",
            "answer_input_tokens",
            "answer_output_tokens",
        ]

    def test_schema_types(self) -> None:
        schema = ColumnPlan(STEPS).schema()
        assert schema.field("index").type == pa.int64()
        assert schema.field("complete").type == pa.bool_()
        assert not schema.field("complete").nullable
        assert schema.field("question").type == pa.string()
        assert schema.field("answer_input_tokens").type == pa.int64()
        assert schema.field("answer_model").type == pa.string()

    def test_a_step_named_like_a_fixed_column_gets_a_unique_name(self) -> None:
        steps = (
            Step(id="index", model="m", prompt="x"),
            Step(id="complete", model="m", prompt="x"),
            Step(id="a", model="m", prompt="x"),
            Step(id="a_model", model="m", prompt="x"),
        )
        names = ColumnPlan(steps).names
        assert len(names) == len(set(names))
        assert "index_output" in names
        assert "complete_output" in names
        assert "a_model_output" in names
        assert "a_model" in names

    def test_row(self) -> None:
        row = ColumnPlan(STEPS).row("job", record(3))
        assert row["id"] == "job-3"
        assert row["index"] == 3
        assert row["answer"] == "a3 é"
        assert row["question_input_tokens"] == 13
        assert row["answer_model"] == "m2"

    def test_missing_step_is_null(self) -> None:
        partial = FinishedRecord(index=1, seed_index=0)
        row = ColumnPlan(STEPS).row("job", partial)
        assert row["question"] is None
        assert row["question_input_tokens"] is None

    def test_an_incomplete_record_is_flagged_with_its_steps_not_run_null(self) -> None:
        row = ColumnPlan(STEPS).row("job", stopped(4))
        assert (row["complete"], row["question"], row["question_input_tokens"]) == (
            False,
            "q4",
            14,
        )
        assert (row["answer"], row["answer_model"], row["answer_output_tokens"]) == (
            None,
            None,
            None,
        )
        assert ColumnPlan(STEPS).row("job", record(4))["complete"] is True


class TestBitmap:
    def test_each_index_once(self) -> None:
        bits = Bitmap(10)
        assert bits.add(3)
        assert not bits.add(3)
        assert 3 in bits
        assert 4 not in bits
        assert not bits.add(10)
        assert not bits.add(-1)


def write(fmt: OutputFormat, records: list[FinishedRecord], batch_rows: int = 2) -> bytes:
    plan = ColumnPlan(STEPS)
    sink = io.BytesIO()
    writer = make_writer(fmt, sink, plan, batch_rows)
    for r in records:
        writer.write(plan.row("job", r))
    writer.close()
    return sink.getvalue()


class TestFormats:
    RECORDS = [record(i) for i in range(5)]
    MIXED = [record(0), stopped(1), record(2)]

    def test_parquet_keeps_incomplete_records_flagged_with_nulls(self) -> None:
        data = write(OutputFormat.PARQUET, self.MIXED)
        table = pq.read_table(io.BytesIO(data), use_threads=False)
        assert table.column("complete").to_pylist() == [True, False, True]
        assert table.column("question").to_pylist()[1] == "q1"
        assert table.column("answer").to_pylist()[1] is None
        assert table.column("answer_output_tokens").to_pylist()[1] is None

    def test_csv_keeps_incomplete_records_flagged_with_empty_fields(self) -> None:
        rows = list(csv.DictReader(io.StringIO(write(OutputFormat.CSV, self.MIXED).decode())))
        assert [r["complete"] for r in rows] == ["true", "false", "true"]
        assert (rows[1]["question"], rows[1]["answer"], rows[1]["answer_model"]) == ("q1", "", "")

    def test_jsonl_keeps_incomplete_records_flagged_with_nulls(self) -> None:
        lines = [json.loads(x) for x in write(OutputFormat.JSONL, self.MIXED).splitlines()]
        assert [x["complete"] for x in lines] == [True, False, True]
        assert (lines[1]["question"], lines[1]["answer"], lines[1]["answer_input_tokens"]) == (
            "q1",
            None,
            None,
        )

    def test_parquet_has_typed_columns_and_row_groups(self) -> None:
        table_file = pq.ParquetFile(io.BytesIO(write(OutputFormat.PARQUET, self.RECORDS)))
        assert table_file.metadata.num_row_groups == 3
        table = table_file.read(use_threads=False)
        assert table.schema == ColumnPlan(STEPS).schema()
        assert table.column("index").to_pylist() == [0, 1, 2, 3, 4]
        assert table.column("answer_output_tokens").to_pylist() == [40, 41, 42, 43, 44]
        assert table.column("question").to_pylist()[0] == record(0).outputs["question"]

    def test_csv_round_trips_quotes_and_newlines(self) -> None:
        text = write(OutputFormat.CSV, self.RECORDS).decode()
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
        assert [r["id"] for r in rows] == [f"job-{i}" for i in range(5)]
        assert rows[0]["question"] == record(0).outputs["question"]
        assert rows[2]["answer_input_tokens"] == "30"

    def test_jsonl_is_one_object_per_line(self) -> None:
        lines = write(OutputFormat.JSONL, self.RECORDS).decode().splitlines()
        assert len(lines) == 5
        first = json.loads(lines[0])
        assert first["question_output_tokens"] == 20
        assert first["answer"] == "a0 é"

    @pytest.mark.parametrize("fmt", list(OutputFormat))
    def test_no_records_is_still_a_valid_file(self, fmt: OutputFormat) -> None:
        data = write(fmt, [])
        if fmt is OutputFormat.PARQUET:
            table = pq.read_table(io.BytesIO(data), use_threads=False)
            assert table.num_rows == 0
            assert table.schema == ColumnPlan(STEPS).schema()
        elif fmt is OutputFormat.CSV:
            assert data.decode().splitlines() == [",".join(ColumnPlan(STEPS).names)]
        else:
            assert data == b""


class FakeS3:
    """The few S3 calls an export makes, in memory."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.uploads: dict[str, list[bytes]] = {}
        self.aborted: list[str] = []

    def put_object(self, *, Bucket: str, Key: str, Body: bytes, **_: Any) -> None:
        self.objects[Key] = bytes(Body)

    def create_multipart_upload(self, *, Bucket: str, Key: str, **_: Any) -> dict[str, str]:
        self.uploads[Key] = []
        return {"UploadId": Key}

    def upload_part(self, *, UploadId: str, PartNumber: int, Body: bytes, **_: Any) -> Any:
        assert PartNumber == len(self.uploads[UploadId]) + 1
        self.uploads[UploadId].append(bytes(Body))
        return {"ETag": f"e{PartNumber}"}

    def complete_multipart_upload(self, *, Key: str, UploadId: str, **_: Any) -> None:
        self.objects[Key] = b"".join(self.uploads.pop(UploadId))

    def abort_multipart_upload(self, *, UploadId: str, **_: Any) -> None:
        self.aborted.append(UploadId)
        self.uploads.pop(UploadId, None)


class MemoryStorage(Storage):
    """Storage whose parts and incomplete records live in a dict (no S3)."""

    def __init__(self, parts: dict[str, bytes]) -> None:
        self.fake = FakeS3()
        super().__init__(self.fake, "bucket")  # type: ignore[arg-type]
        self.parts = parts

    def part_keys(self, job_id: str, start: int = 0, end: int | None = None) -> Iterator[str]:
        return iter(sorted(k for k in self.parts if "/parts/" in k))

    def incomplete_keys(self, job_id: str, start: int = 0, end: int | None = None) -> Iterator[str]:
        return iter(sorted(k for k in self.parts if "/incomplete/" in k))

    def open(self, key: str) -> io.BufferedReader:
        return io.BufferedReader(io.BytesIO(self.parts[key]))

    def read_bytes(self, key: str) -> bytes:
        return self.parts[key]


class SlowFirstStorage(MemoryStorage):
    """The earlier a part's key, the longer reading it takes."""

    def read_bytes(self, key: str) -> bytes:
        keys = sorted(self.parts)
        time.sleep(0.002 * (len(keys) - keys.index(key)))
        return self.parts[key]


class TestMultipartSink:
    def test_small_file_is_one_put(self) -> None:
        storage = MemoryStorage({})
        sink = MultipartSink(storage, "k", 10, "text/plain")
        sink.write(b"abc")
        assert sink.finish() == 3
        assert storage.fake.objects["k"] == b"abc"

    def test_large_file_goes_up_in_bounded_parts(self) -> None:
        storage = MemoryStorage({})
        sink = MultipartSink(storage, "k", 10, "text/plain")
        for _ in range(7):
            sink.write(b"abcd")
        assert len(storage.fake.uploads["k"]) == 2
        assert sink.finish() == 28
        assert storage.fake.objects["k"] == b"abcd" * 7

    def test_abort_discards_the_upload(self) -> None:
        storage = MemoryStorage({})
        sink = MultipartSink(storage, "k", 4, "text/plain")
        sink.write(b"abcdef")
        sink.abort()
        assert storage.fake.aborted == ["k"]
        assert "k" not in storage.fake.objects


def part(job: str, indices: list[int]) -> bytes:
    return encode_part(job, [record(i) for i in indices])


class TestWriteDataset:
    @pytest.mark.parametrize("fmt", list(OutputFormat))
    def test_every_record_exactly_once(self, fmt: OutputFormat) -> None:
        storage = MemoryStorage(
            {
                "jobs/j/parts/0000000000.jsonl": part("j", [0, 1, 2]),
                "jobs/j/parts/0000000002.jsonl": part("j", [2, 3]),  # overlaps: 2 again
                "jobs/j/parts/0000000005.jsonl": part("j", [5, 6, 99]),  # 99 is out of range
            }
        )
        result = write_dataset(storage, "j", fmt, STEPS, 7, batch_rows=2, part_bytes=64)
        assert result.key == f"jobs/j/export/dataset.{fmt.value}"
        assert (result.records, result.duplicates, result.out_of_range) == (6, 1, 1)
        data = storage.fake.objects[result.key]
        assert result.bytes == len(data)
        if fmt is OutputFormat.PARQUET:
            indices = pq.read_table(io.BytesIO(data), use_threads=False).column("index").to_pylist()
        elif fmt is OutputFormat.CSV:
            rows = csv.DictReader(io.StringIO(data.decode(), newline=""))
            indices = [int(r["index"]) for r in rows]
        else:
            indices = [json.loads(line)["index"] for line in data.splitlines()]
        assert indices == [0, 1, 2, 3, 5, 6]

    @pytest.mark.parametrize("fmt", list(OutputFormat))
    def test_incomplete_records_join_in_index_order_unless_made_complete(
        self, fmt: OutputFormat
    ) -> None:
        storage = MemoryStorage(
            {
                "jobs/j/parts/0000000000.jsonl": part("j", [0, 1]),
                "jobs/j/parts/0000000003.jsonl": part("j", [3, 4]),  # 3 was resumed: complete
                "jobs/j/incomplete/0000000002.json": encode_part("j", [stopped(2)]),
                "jobs/j/incomplete/0000000003.json": encode_part("j", [stopped(3)]),
                "jobs/j/incomplete/0000000006.json": encode_part("j", [stopped(6)]),
                # Only invalid answers paid (batch mode): made nothing, so no row.
                "jobs/j/incomplete/0000000005.json": encode_part(
                    "j",
                    [FinishedRecord(5, 5, complete=False, invalid_answers={"a": 1})],
                ),
            }
        )
        result = write_dataset(storage, "j", fmt, STEPS, 7, batch_rows=2, part_bytes=64)
        assert (result.records, result.incomplete, result.duplicates) == (6, 2, 0)
        data = storage.fake.objects[result.key]
        if fmt is OutputFormat.PARQUET:
            table = pq.read_table(io.BytesIO(data), use_threads=False)
            rows = [
                {"index": i, "complete": c}
                for i, c in zip(
                    table.column("index").to_pylist(),
                    table.column("complete").to_pylist(),
                    strict=True,
                )
            ]
        elif fmt is OutputFormat.CSV:
            rows = [
                {"index": int(r["index"]), "complete": r["complete"] == "true"}
                for r in csv.DictReader(io.StringIO(data.decode(), newline=""))
            ]
        else:
            rows = [json.loads(line) for line in data.splitlines()]
        assert [(r["index"], r["complete"]) for r in rows] == [
            (0, True),
            (1, True),
            (2, False),
            (3, True),
            (4, True),
            (6, False),
        ]

    def test_parts_read_ahead_are_written_in_key_order(self) -> None:
        parts = {
            f"jobs/j/parts/{k * 2:010d}.jsonl": part("j", [k * 2, k * 2 + 1]) for k in range(20)
        }
        storage = SlowFirstStorage(parts)
        assert [key for key, _ in storage.read_ahead(sorted(parts), 8)] == sorted(parts)
        result = write_dataset(
            storage, "j", OutputFormat.JSONL, STEPS, 40, batch_rows=2, part_bytes=64
        )
        data = storage.fake.objects[result.key]
        assert [json.loads(line)["index"] for line in data.splitlines()] == list(range(40))

    def test_a_bad_line_fails_the_export_and_aborts_the_upload(self) -> None:
        storage = MemoryStorage({"jobs/j/parts/0000000000.jsonl": b'{"index": 0}\n'})
        with pytest.raises(ExportError, match="line 1"):
            write_dataset(storage, "j", OutputFormat.JSONL, STEPS, 1, batch_rows=2, part_bytes=64)
        assert "jobs/j/export/dataset.jsonl" not in storage.fake.objects

    def test_a_job_without_records_exports_an_empty_file(self) -> None:
        storage = MemoryStorage({})
        result = write_dataset(
            storage, "j", OutputFormat.PARQUET, STEPS, 0, batch_rows=2, part_bytes=64
        )
        assert result.records == 0
        table = pq.read_table(io.BytesIO(storage.fake.objects[result.key]), use_threads=False)
        assert table.num_rows == 0
