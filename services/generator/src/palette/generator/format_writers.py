"""Dataset formatting: columns, rows, and JSONL / CSV / Parquet writers.

Pure logic: writers write bytes to any file-like sink (an S3 multipart sink in
the service, a BytesIO in tests) and buffer at most one batch of rows.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.parquet as pq

from palette.common.keys import record_id
from palette.common.messages import OutputFormat
from palette.common.samplers import CategorySampler, FloatSampler, IntSampler
from palette.common.templates import Step
from palette.generator.records import FinishedRecord
from palette.generator.structured_columns import arrow_type, conform, leaf_paths, leaf_value

CONTENT_TYPES = {
    OutputFormat.JSONL: "application/x-ndjson",
    OutputFormat.CSV: "text/csv; charset=utf-8",
    OutputFormat.PARQUET: "application/vnd.apache.parquet",
}
TEXT_FLUSH_BYTES = 1024 * 1024
PARQUET_FLUSH_BYTES = 32 * 1024 * 1024


class Sink(Protocol):
    """Where a writer puts its bytes."""

    def write(self, data: bytes, /) -> int:
        """Append bytes."""
        ...


@dataclass(frozen=True, slots=True)
class StepColumns:
    """The column names of one step."""

    step_id: str
    output: str
    model: str
    input_tokens: str
    output_tokens: str
    schema: dict[str, Any] | None = None
    """The step's output schema: its output keeps the types (``structured_columns``)."""


class ColumnPlan:
    """The dataset's columns: id, index, seed_index, complete, outputs, then typed metadata.

    ``complete`` is false for a record whose later steps never ran (its job
    stopped first): their output, model and token columns are null. A step's
    output column is named after the step; if that name is taken (a step
    called ``index`` or ``complete``, or ``a_model`` beside a step ``a``), a
    suffix keeps every column name unique.
    """

    def __init__(self, steps: Sequence[Step], variables: Mapping[str, Any] | None = None) -> None:
        taken = set(FIXED)
        meta_names = {f"{s.id}_{suffix}" for s in steps for suffix in _META}

        def unique(name: str, avoid: set[str]) -> str:
            extra = (f"{name}_output_{n}" for n in itertools.count(2))
            for candidate in itertools.chain((name, f"{name}_output"), extra):
                if candidate not in taken and candidate not in avoid:
                    taken.add(candidate)
                    return candidate
            raise AssertionError("unreachable")  # pragma: no cover

        outputs = [unique(s.id, meta_names) for s in steps]
        self.steps = [
            StepColumns(
                s.id,
                out,
                unique(f"{s.id}_model", set()),
                unique(f"{s.id}_input_tokens", set()),
                unique(f"{s.id}_output_tokens", set()),
                s.answer_schema,
            )
            for s, out in zip(steps, outputs, strict=True)
        ]
        self.variables = [
            (name, unique(f"{VARS_PREFIX}{name}", set()), variable_type(sampler))
            for name, sampler in (variables or {}).items()
        ]

    def csv_columns(self) -> list[tuple[str, str, tuple[str, ...] | None]]:
        """CSV's columns: ``(header, column, path)``, a structured output's by leaf field.

        ``path`` is None for a plain column; a leaf of a structured output is
        ``<column>.<dotted path>``.
        """
        schemas = {s.output: s.schema for s in self.steps if s.schema is not None}
        columns: list[tuple[str, str, tuple[str, ...] | None]] = []
        for name in self.names:
            if name not in schemas:
                columns.append((name, name, None))
                continue
            for path in leaf_paths(schemas[name]):
                columns.append((".".join((name, *path)), name, path))
        return columns

    @property
    def names(self) -> list[str]:
        """Every column, in order."""
        names = [*FIXED, *(s.output for s in self.steps)]
        for s in self.steps:
            names += [s.model, s.input_tokens, s.output_tokens]
        return names + [column for _, column, _ in self.variables]

    def schema(self) -> pa.Schema:
        """The Arrow schema: strings, int64 indices and token counts."""
        fields = [
            pa.field("id", pa.string(), nullable=False),
            pa.field("index", pa.int64(), nullable=False),
            pa.field("seed_index", pa.int64(), nullable=False),
            pa.field("complete", pa.bool_(), nullable=False),
            *(pa.field(s.output, arrow_type(s.schema or {})) for s in self.steps),
        ]
        for s in self.steps:
            fields += [
                pa.field(s.model, pa.string()),
                pa.field(s.input_tokens, pa.int64()),
                pa.field(s.output_tokens, pa.int64()),
            ]
        fields += [pa.field(column, kind) for _, column, kind in self.variables]
        return pa.schema(fields)

    def row(self, job_id: str, record: FinishedRecord) -> dict[str, Any]:
        """One flat row of the dataset (None where a step has no value)."""
        row: dict[str, Any] = {
            "id": record_id(job_id, record.index),
            "index": record.index,
            "seed_index": record.seed_index,
            "complete": record.complete,
        }
        for s in self.steps:
            value = record.outputs.get(s.step_id)
            row[s.output] = value if s.schema is None else conform(value, s.schema)
        for s in self.steps:
            usage = record.usage.get(s.step_id)
            row[s.model] = record.models.get(s.step_id)
            row[s.input_tokens] = usage[0] if usage else None
            row[s.output_tokens] = usage[1] if usage else None
        for name, column, kind in self.variables:
            row[column] = _typed(record.variables.get(name), kind)
        return row


_META = ("model", "input_tokens", "output_tokens")
VARS_PREFIX = "vars."
"""A template variable's column: ``vars.<name>`` (after the steps' columns)."""


def variable_type(sampler: Any) -> pa.DataType:
    """The column type of a variable's draws: the sampler's, else string."""
    if isinstance(sampler, IntSampler):
        return pa.int64()
    if isinstance(sampler, FloatSampler):
        return pa.float64()
    if isinstance(sampler, CategorySampler):
        kinds = {type(v) for v in sampler.values}
        if kinds == {bool}:
            return pa.bool_()
        if kinds == {int}:
            return pa.int64()
        if kinds <= {int, float}:
            return pa.float64()
    return pa.string()


def _typed(value: Any, kind: pa.DataType) -> Any:
    """A draw as its column holds it (a seed value that is not a string, as text)."""
    if value is None or kind != pa.string() or isinstance(value, str):
        return float(value) if kind == pa.float64() and value is not None else value
    return json.dumps(value)


FIXED = ("id", "index", "seed_index", "complete")


class Bitmap:
    """One bit per record index: each record is written at most once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._bits = bytearray((size + 7) // 8)

    def add(self, index: int) -> bool:
        """Set the bit; True if it was clear (False also when out of range)."""
        if not 0 <= index < self.size:
            return False
        byte, bit = divmod(index, 8)
        if self._bits[byte] >> bit & 1:
            return False
        self._bits[byte] |= 1 << bit
        return True

    def __contains__(self, index: object) -> bool:
        if not isinstance(index, int) or not 0 <= index < self.size:
            return False
        byte, bit = divmod(index, 8)
        return bool(self._bits[byte] >> bit & 1)


class RowWriter(Protocol):
    """Writes rows of one format to a sink."""

    def write(self, row: dict[str, Any]) -> None:
        """Add one row."""
        ...

    def close(self) -> None:
        """Write everything buffered and the format's trailer."""
        ...


class JsonlWriter:
    """One JSON object per line."""

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._buffer = io.BytesIO()

    def write(self, row: dict[str, Any]) -> None:
        """Add one row."""
        self._buffer.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")
        if self._buffer.tell() >= TEXT_FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        self._sink.write(self._buffer.getvalue())
        self._buffer = io.BytesIO()

    def close(self) -> None:
        """Write what is buffered."""
        self._flush()


class CsvWriter:
    """RFC 4180 CSV with a header row, UTF-8."""

    def __init__(
        self, sink: Sink, columns: Sequence[tuple[str, str, tuple[str, ...] | None]]
    ) -> None:
        self._sink = sink
        self._columns = list(columns)
        self._buffer = io.StringIO()
        self._csv = csv.writer(self._buffer, lineterminator="\r\n")
        self._csv.writerow([header for header, _, _ in self._columns])

    def write(self, row: dict[str, Any]) -> None:
        """Add one row (None is an empty field, a boolean ``true`` or ``false``)."""
        self._csv.writerow(
            [
                _csv_field(row[c] if path is None else leaf_value(row[c], path))
                for _, c, path in self._columns
            ]
        )
        if self._buffer.tell() >= TEXT_FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        self._sink.write(self._buffer.getvalue().encode())
        self._buffer.seek(0)
        self._buffer.truncate()

    def close(self) -> None:
        """Write what is buffered."""
        self._flush()


def _csv_field(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


class ParquetDatasetWriter:
    """Parquet with typed columns, one row group per batch of rows."""

    def __init__(self, sink: Sink, schema: pa.Schema, batch_rows: int) -> None:
        self._schema = schema
        self._batch_rows = batch_rows
        self._rows: list[dict[str, Any]] = []
        self._bytes = 0
        self._writer = pq.ParquetWriter(sink, schema, compression="zstd")

    def write(self, row: dict[str, Any]) -> None:
        """Add one row."""
        self._rows.append(row)
        self._bytes += sum(len(v) for v in row.values() if isinstance(v, str))
        if len(self._rows) >= self._batch_rows or self._bytes >= PARQUET_FLUSH_BYTES:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            table = pa.Table.from_pylist(self._rows, schema=self._schema)
            self._writer.write_table(table, row_group_size=len(self._rows))
            self._rows, self._bytes = [], 0

    def close(self) -> None:
        """Write the last row group and the footer."""
        self._flush()
        self._writer.close()


def make_writer(fmt: OutputFormat, sink: Sink, plan: ColumnPlan, batch_rows: int) -> RowWriter:
    """The writer of a format."""
    if fmt is OutputFormat.PARQUET:
        return ParquetDatasetWriter(sink, plan.schema(), batch_rows)
    if fmt is OutputFormat.CSV:
        return CsvWriter(sink, plan.csv_columns())
    return JsonlWriter(sink)
