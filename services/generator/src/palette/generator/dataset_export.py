"""Assemble a job's parts into its dataset file, streaming (see format_writers.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import structlog

from palette.common import keys
from palette.common import messages as m
from palette.common.record_filters import INVALID_OUTPUT, MAX_NEAR_SIGNATURES, RecordFilter
from palette.common.targets import SURPLUS
from palette.common.templates import Step
from palette.common.tracing import span
from palette.generator.batch_salvage import apply_unapplied
from palette.generator.format_writers import (
    CONTENT_TYPES,
    Bitmap,
    ColumnPlan,
    RowWriter,
    make_writer,
)
from palette.generator.metrics import RECORDS_EXPORTED
from palette.generator.records import FinishedRecord, decode_line
from palette.generator.repository import ExportInfo, Filters
from palette.generator.runtime import GeneratorRuntime, Publish
from palette.generator.storage import Storage

log = structlog.get_logger("palette.generator.export")

_NAMESPACE = uuid.UUID("0b8f3d0e-64c4-4a47-9a4c-5d1f7d1c9e21")
READ_AHEAD_PARTS = 8
"""Parts read ahead while one is written: the export waited on one GET per part
(100,000 records are 4,000 parts) and wrote 1,100 records/s from moto's S3."""


class ExportError(Exception):
    """A part that cannot be read as records."""


@dataclass(slots=True)
class ExportResult:
    """What was written."""

    key: str
    records: int = 0
    """Rows written: complete records and incomplete ones."""
    bytes: int = 0
    duplicates: int = 0
    out_of_range: int = 0
    incomplete: int = 0
    """Rows of incomplete records (``complete`` false)."""
    rejected: dict[str, int] = field(default_factory=dict)
    """Complete records not in the dataset, by reason (``keep_if``, ``duplicate``,
    ``invalid_output``, ``surplus``)."""
    rejected_key: str | None = None
    """Where the rejected records are (None: the job filters nothing)."""


class IncompleteRecords:
    """A job's incomplete records in index order, handed out below a bound."""

    def __init__(self, bodies: Iterator[tuple[str, bytes]]) -> None:
        self._bodies = bodies
        self._next: FinishedRecord | None = None

    def below(self, bound: int | None) -> Iterator[FinishedRecord]:
        """The records with an index below ``bound`` not handed out yet (None: all left)."""
        while True:
            if self._next is None:
                item = next(self._bodies, None)
                if item is None:
                    return
                key, body = item
                try:
                    self._next = decode_line(body)
                except ValueError as exc:
                    raise ExportError(f"{key}: {exc}") from exc
            if bound is not None and self._next.index >= bound:
                return
            record, self._next = self._next, None
            yield record


@dataclass(slots=True)
class Rows:
    """Writes each record index once, counting what it writes and what it skips."""

    job_id: str
    plan: ColumnPlan
    writer: RowWriter
    num_records: int
    result: ExportResult
    keep: RecordFilter | None = None
    rejected: RowWriter | None = None
    limit: int | None = None
    """Complete records kept at most (a ``target: "kept"`` job's ``num_records``)."""
    kept: int = 0
    seen: Bitmap = field(init=False)

    def __post_init__(self) -> None:
        self.seen = Bitmap(self.num_records)

    def add(self, record: FinishedRecord) -> None:
        """Write the record unless its index is out of range or written already.

        A complete record the job's filter rejects goes to the rejected rows with
        its reason instead (records arrive in index order: the first of duplicates
        is the one kept).
        """
        if not (record.complete or record.outputs):
            return  # an incomplete record that made nothing (invalid answers only): no row
        if not 0 <= record.index < self.num_records:
            self.result.out_of_range += 1
        elif self.seen.add(record.index):
            if record.complete and self._rejected(record):
                return
            self.kept += record.complete
            self.writer.write(self.plan.row(self.job_id, record))
            self.result.records += 1
            self.result.incomplete += not record.complete
        elif record.complete:  # an incomplete record made complete later is no duplicate
            self.result.duplicates += 1

    def _rejected(self, record: FinishedRecord) -> bool:
        """Whether a complete record is rejected (written to the rejected rows)."""
        rejection = None
        if record.invalid is not None:
            rejection = (INVALID_OUTPUT, record.invalid.get("error", ""))
        elif self.keep is not None:
            rejection = self.keep.rejection(record.index, record.outputs, record.variables)
        if rejection is None and self.limit is not None and self.kept >= self.limit:
            rejection = (SURPLUS, f"{self.limit} records were kept before it (the target)")
        if rejection is None:
            return False
        assert self.rejected is not None
        reason, detail = rejection
        row = self.plan.row(self.job_id, record)
        self.rejected.write({**row, "rejected_reason": reason, "rejected_detail": detail})
        self.result.rejected[reason] = self.result.rejected.get(reason, 0) + 1
        return True


def write_dataset(
    storage: Storage,
    job_id: str,
    fmt: m.OutputFormat,
    steps: tuple[Step, ...],
    num_records: int,
    *,
    batch_rows: int,
    part_bytes: int,
    key: str | None = None,
    variables: Mapping[str, Any] | None = None,
    filters: Filters | None = None,
    near_signatures: int = MAX_NEAR_SIGNATURES,
) -> ExportResult:
    """Stream every part in key order, and the incomplete records, into the export object.

    Blocking. Each record index is written at most once (a bitmap over
    ``num_records``): from its part, else from its incomplete object, in index
    order. Memory holds ``READ_AHEAD_PARTS`` parts and as many incomplete
    records, one batch of rows and one upload part. ``key`` is the job's
    export key unless given (a snapshot writes elsewhere). ``variables``: the
    template's, a column each after the steps'. ``filters``: the job's
    ``keep_if`` and ``dedup``; the records they reject, and those a step of
    which answered nothing its schema validates (a template with a schema'd
    step), are written as JSONL beside the dataset (``keys.rejected_key``)
    with their reason. ``near_signatures``: the near-dedup bound
    (``RecordFilter``'s ``max_signatures``).
    """
    plan = ColumnPlan(steps, variables)
    result = ExportResult(key or keys.export_key(job_id, fmt))
    sink = storage.upload(result.key, part_bytes, CONTENT_TYPES[fmt])
    rejected_sink = None
    schemas = any(step.answer_schema is not None for step in steps)
    if schemas or (filters is not None and filters.active):
        result.rejected_key = keys.rejected_key(result.key)
        rejected_sink = storage.upload(
            result.rejected_key, part_bytes, CONTENT_TYPES[m.OutputFormat.JSONL]
        )
    try:
        rows = Rows(job_id, plan, make_writer(fmt, sink, plan, batch_rows), num_records, result)
        if rejected_sink is not None:
            rows.keep = _record_filter(filters, near_signatures)
            rows.limit = filters.keep_limit if filters is not None else None
            rows.rejected = make_writer(m.OutputFormat.JSONL, rejected_sink, plan, batch_rows)
        _add_every_record(storage, job_id, rows)
        rows.writer.close()
        if rows.rejected is not None and rejected_sink is not None:
            rows.rejected.close()
            rejected_sink.finish()  # before the dataset: a dataset never lacks its rejected file
        result.bytes = sink.finish()
    except BaseException:
        sink.abort()
        if rejected_sink is not None:
            rejected_sink.abort()
        raise
    return result


def _record_filter(filters: Filters | None, near_signatures: int) -> RecordFilter | None:
    """The job's ``keep_if`` and ``dedup`` as one filter (None: it has neither)."""
    if filters is None or not filters.filters:
        return None
    return RecordFilter(filters.keep_if, filters.dedup, filters.template_keep_if, near_signatures)


def _add_every_record(storage: Storage, job_id: str, rows: Rows) -> None:
    """Hand every part's records and the incomplete ones to ``rows``, in index order."""
    incomplete = IncompleteRecords(
        storage.read_ahead(storage.incomplete_keys(job_id), READ_AHEAD_PARTS)
    )
    for part, body in storage.read_ahead(storage.part_keys(job_id), READ_AHEAD_PARTS):
        for record in incomplete.below(keys.part_start(part)):
            rows.add(record)
        for line_no, raw in enumerate(body.split(b"\n"), start=1):
            if not raw.strip():
                continue
            try:
                record = decode_line(raw)
            except ValueError as exc:
                raise ExportError(f"{part} line {line_no}: {exc}") from exc
            rows.add(record)
    for record in incomplete.below(None):
        rows.add(record)
    if rows.keep is not None and rows.keep.unremembered:
        log.warning("near_dedup_bound_reached", job_id=job_id, unremembered=rows.keep.unremembered)


async def write_job_dataset(
    rt: GeneratorRuntime,
    job_id: str,
    fmt: m.OutputFormat,
    info: ExportInfo,
    key: str | None = None,
) -> ExportResult:
    """Write a job's parts as one dataset (at ``key``, default the export key), off the loop."""
    return await asyncio.to_thread(
        write_dataset,
        rt.storage,
        job_id,
        fmt,
        info.template.steps,
        info.num_records,
        batch_rows=rt.settings.export_batch_rows,
        part_bytes=rt.settings.export_part_bytes,
        key=key,
        variables=info.template.variables,
        filters=info.filters,
        near_signatures=rt.settings.dedup_near_max_signatures,
    )


async def run_export(msg: m.ExportJob, rt: GeneratorRuntime, publish: Publish) -> None:
    """Write a job's dataset, then publish ExportCompleted or ExportFailed.

    The outputs of batch jobs no attempt applied are given to their records
    first (``batch_salvage``).
    """
    event_id = uuid.uuid5(_NAMESPACE, f"export-end:{msg.message_id}").hex
    try:
        info = await rt.jobs.export_info(msg.job_id)
        error = f"job {msg.job_id} does not exist"
    except Exception as exc:
        info, error = None, f"reading job {msg.job_id} failed: {type(exc).__name__}: {exc}"
    if info is None:
        log.warning("export_failed", error=error)
        await publish(m.ExportFailed(message_id=event_id, job_id=msg.job_id, error=error))
        return
    try:
        with span("write dataset", {"palette.format": msg.output_format.value}):
            await apply_unapplied(rt, msg.job_id)  # batch jobs no attempt applied
            result = await write_job_dataset(rt, msg.job_id, msg.output_format, info)
    except Exception as exc:
        log.exception("export_failed")
        error = f"export failed: {type(exc).__name__}: {exc}"[:2000]
        await publish(m.ExportFailed(message_id=event_id, job_id=msg.job_id, error=error))
        return
    complete = result.records - result.incomplete + sum(result.rejected.values())
    if complete != msg.expected_records or result.duplicates or result.out_of_range:
        log.warning(
            "export_counts",
            records=result.records,
            incomplete=result.incomplete,
            expected=msg.expected_records,
            duplicates=result.duplicates,
            out_of_range=result.out_of_range,
        )
    RECORDS_EXPORTED.inc(result.records)
    await publish(
        m.ExportCompleted(
            message_id=event_id,
            job_id=msg.job_id,
            output_format=msg.output_format,
            key=result.key,
            records=result.records,
            incomplete=result.incomplete,
            bytes=result.bytes,
            rejected=sum(result.rejected.values()),
            rejected_reasons=result.rejected,
            rejected_key=result.rejected_key,
        )
    )
    log.info(
        "export_completed",
        key=result.key,
        records=result.records,
        incomplete=result.incomplete,
        bytes=result.bytes,
    )
