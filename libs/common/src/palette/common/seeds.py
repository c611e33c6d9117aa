"""Seed files: streaming parsers for JSON arrays, JSONL and CSV, and sampling.

Nothing here loads a whole file: records are yielded one at a time from a
binary stream (a local file or an S3 body), and the first problem is reported
with its record number and, where the format has lines, its line. Every format
is UTF-8 (a byte-order mark is dropped); anything else is refused by
``seed_encoding`` naming the encoding and the offset of the first bad byte.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from enum import StrEnum
from typing import IO, Any

import ijson

from palette.common.seed_encoding import EncodingProblem, Utf8Checked, strip_utf8_bom

MAX_COLUMNS = 1_000
MAX_DEPTH = 32
MAX_RECORD_BYTES = 1_000_000


class SeedFormat(StrEnum):
    """Accepted seed file formats."""

    JSON = "json"
    JSONL = "jsonl"
    CSV = "csv"


class SeedError(ValueError):
    """A seed file that cannot be read; says where and what is wrong."""

    def __init__(self, problem: str, *, record: int | None = None, line: int | None = None) -> None:
        where = []
        if line is not None:
            where.append(f"line {line}")
        if record is not None:
            where.append(f"record {record}")
        super().__init__(f"{problem} ({', '.join(where)})" if where else problem)
        self.problem = problem
        self.record = record
        self.line = line


def format_from_name(name: str) -> SeedFormat | None:
    """The format a file name's extension implies, if any."""
    lowered = name.lower()
    if lowered.endswith((".jsonl", ".ndjson")):
        return SeedFormat.JSONL
    if lowered.endswith(".json"):
        return SeedFormat.JSON
    if lowered.endswith(".csv"):
        return SeedFormat.CSV
    return None


def _without_bom(head: bytes) -> bytes:
    """The first bytes without a UTF-8 byte-order mark; a file not in UTF-8 is refused."""
    try:
        return strip_utf8_bom(head)
    except EncodingProblem as exc:
        raise SeedError(exc.problem) from exc


def sniff_format(head: bytes) -> SeedFormat:
    """Guess a format from the first bytes of a file.

    Raises:
        SeedError: when the file is empty, or is UTF-16 or UTF-32.
    """
    text = _without_bom(head).lstrip()
    if not text:
        raise SeedError("the file is empty")
    if text.startswith(b"["):
        return SeedFormat.JSON
    if text.startswith(b"{"):
        return SeedFormat.JSONL
    return SeedFormat.CSV


def _depth(value: Any, limit: int) -> int:
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if deepest > limit:
            return deepest
        if isinstance(item, dict):
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, level + 1) for v in item)
    return deepest


def _check(value: Any, record: int, line: int | None = None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SeedError(
            f"each record must be a JSON object, found {type(value).__name__}",
            record=record,
            line=line,
        )
    if _depth(value, MAX_DEPTH) > MAX_DEPTH:
        raise SeedError(f"record nested deeper than {MAX_DEPTH} levels", record=record, line=line)
    return value


def _jsonl(stream: IO[bytes]) -> Iterator[dict[str, Any]]:
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    record = 0
    for line_no, raw in enumerate(stream, start=1):
        if len(raw) > MAX_RECORD_BYTES:
            raise SeedError(f"line longer than {MAX_RECORD_BYTES} bytes", line=line_no)
        text = decoder.decode(raw)  # read_records has checked the bytes are UTF-8
        if not text.strip():
            continue
        record += 1
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise SeedError(f"invalid JSON: {exc.msg}", line=line_no, record=record) from exc
        except RecursionError as exc:
            raise SeedError("JSON nested too deeply", line=line_no, record=record) from exc
        yield _check(value, record, line_no)
    if record == 0:
        raise SeedError("the file has no records")


def _ijson_problem(exc: Exception) -> str:
    """The first line of an ijson error (its C parser gives bytes with a drawing of the spot)."""
    reason = exc.args[0] if exc.args else exc
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    return str(reason).strip().splitlines()[0] if str(reason).strip() else type(exc).__name__


def _json_array(stream: IO[bytes]) -> Iterator[dict[str, Any]]:
    record = 0
    try:
        for value in ijson.items(stream, "item", use_float=True):
            record += 1
            yield _check(value, record)
    except ijson.common.IncompleteJSONError as exc:
        problem = f"invalid or truncated JSON: {_ijson_problem(exc)}"
        raise SeedError(problem, record=record + 1) from exc
    except ijson.common.JSONError as exc:
        raise SeedError(f"invalid JSON: {_ijson_problem(exc)}", record=record + 1) from exc
    except RecursionError as exc:
        raise SeedError("JSON nested too deeply", record=record + 1) from exc
    if record == 0:
        raise SeedError("the JSON array has no records (a JSON array of objects is expected)")


def _text_lines(stream: IO[bytes]) -> Iterator[str]:
    """The stream's lines decoded one by one (read_records has checked they are UTF-8)."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    for line_no, raw in enumerate(stream, start=1):
        if len(raw) > MAX_RECORD_BYTES:
            raise SeedError(f"line longer than {MAX_RECORD_BYTES} bytes", line=line_no)
        yield decoder.decode(raw)


def _csv(stream: IO[bytes]) -> Iterator[dict[str, Any]]:
    reader = csv.reader(_text_lines(stream))
    try:
        header = next(reader, None)
        if header is None:
            raise SeedError("the file is empty")
        if len(header) > MAX_COLUMNS:
            raise SeedError(f"more than {MAX_COLUMNS} columns", line=1)
        if len(set(header)) != len(header) or any(not name.strip() for name in header):
            raise SeedError("CSV header needs unique, non-empty column names", line=1)
        record = 0
        for row in reader:
            if not row:
                continue
            record += 1
            if len(row) != len(header):
                raise SeedError(
                    f"row has {len(row)} fields, the header has {len(header)}",
                    line=reader.line_num,
                    record=record,
                )
            yield dict(zip(header, row, strict=True))
        if record == 0:
            raise SeedError("the CSV file has a header but no rows")
    except csv.Error as exc:
        raise SeedError(f"invalid CSV: {exc}", line=reader.line_num) from exc


class _Peekable(io.RawIOBase):
    """A binary stream (any object with ``read``) with its first bytes pushed back."""

    def __init__(self, head: bytes, rest: Any, *, owns: bool = False) -> None:
        self._head = head
        self._rest = rest
        self._owns = owns

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        if self._head:
            n = min(len(view), len(self._head))
            view[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._rest.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._owns and not self.closed and hasattr(self._rest, "close"):
            self._rest.close()
        super().close()


def buffered(body: Any, buffer_size: int = 64 * 1024) -> io.BufferedReader:
    """Any object with ``read`` (a botocore StreamingBody) as a buffered binary stream.

    Closing the result closes ``body``.
    """
    return io.BufferedReader(_Peekable(b"", body, owns=True), buffer_size=buffer_size)


def read_records(stream: IO[bytes], fmt: SeedFormat | None = None) -> Iterator[dict[str, Any]]:
    """Yield the records of a seed file one by one (nothing is read before the first).

    Raises:
        SeedError: as the records are read, the first problem (an empty file at once).
    """
    # The first bytes are read ahead and pushed back; an S3 body iterates in
    # fixed-size chunks, not lines, so it gets a real reader too (the caller
    # still owns and closes the stream).
    # Every byte is checked to be UTF-8 before a parser sees it, and a UTF-8
    # byte-order mark is dropped, so each format reads text the same way.
    head = stream.read(512)
    if not head:
        raise SeedError("the file is empty")
    text = _without_bom(head)
    if fmt is None:
        fmt = sniff_format(text)
    checked = Utf8Checked(_Peekable(text, stream), offset=len(head) - len(text))
    lines = io.BufferedReader(checked, buffer_size=64 * 1024)
    parse = {SeedFormat.JSONL: _jsonl, SeedFormat.JSON: _json_array}.get(fmt, _csv)
    try:
        yield from parse(lines)
    except EncodingProblem as exc:
        raise SeedError(exc.problem, line=exc.line) from exc


def count_records(records: Iterable[dict[str, Any]]) -> int:
    """Count records, reading every one (so every one is checked)."""
    return sum(1 for _ in records)


def seed_index(job_id: str, record_index: int, seed_count: int) -> int:
    """Which seed record (0-based) record ``record_index`` of a job draws.

    Deterministic in (job id, record index), so a re-run draws the same seed.
    """
    digest = hashlib.blake2b(f"{job_id}:{record_index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % seed_count


def pick_seeds(
    records: Iterable[dict[str, Any]], wanted: Iterable[int]
) -> dict[int, dict[str, Any]]:
    """One pass over the records keeping only the 0-based positions wanted."""
    want = set(wanted)
    found: dict[int, dict[str, Any]] = {}
    if not want:
        return found
    last = max(want)
    for position, record in enumerate(records):
        if position in want:
            found[position] = record
        if position >= last:
            break
    if len(found) != len(want):
        missing = sorted(want - set(found))[:5]
        raise SeedError(f"seed file has fewer records than expected (missing {missing})")
    return found


def missing_fields(record: Mapping[str, Any], requirements: list[str]) -> list[str]:
    """The required dotted paths a seed record does not have."""
    missing = []
    for path in requirements:
        value: Any = record
        for part in path.split("."):
            if isinstance(value, Mapping) and part in value:
                value = value[part]
            else:
                missing.append(path)
                break
    return missing
