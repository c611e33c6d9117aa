"""Pure seed-file logic: safe file names, key ownership, validation and schema checks.

Nothing here does network I/O: validation reads a local (spooled) file, and
the schema check takes any iterable of records.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from palette.common.keys import seed_prefix
from palette.common.seeds import (
    SeedError,
    SeedFormat,
    count_records,
    format_from_name,
    missing_fields,
    read_records,
    sniff_format,
)

MAX_FILENAME_CHARS = 200
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DOTS = re.compile(r"\.{2,}")


def sanitize_filename(name: str) -> str:
    """A file name safe as the last part of an S3 key.

    Keeps only the final path component, replaces anything but letters,
    digits, ``.``, ``_`` and ``-`` with ``_``, collapses runs of dots (so no
    ``..``), drops leading dots and dashes, and caps the length while keeping
    the extension. A name of which only the extension is left (``名前.csv``)
    becomes ``seeds-<8 hex digits of the original name>.csv``.

    Raises:
        ValueError: when nothing usable is left.
    """
    base = re.split(r"[/\\]", name.strip())[-1]
    cleaned = _DOTS.sub(".", _UNSAFE.sub("_", base)).rstrip(".")
    stem, dot, ext = cleaned.rpartition(".")
    if dot and ext and not stem.strip("._-"):
        digest = hashlib.sha256(base.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        cleaned = f"seeds-{digest}.{ext}"
    safe = cleaned.lstrip(".-_")
    if len(safe) > MAX_FILENAME_CHARS:
        stem, dot, ext = safe.rpartition(".")
        if dot and 0 < len(ext) <= 10:
            safe = f"{stem[: MAX_FILENAME_CHARS - len(ext) - 1]}.{ext}"
        else:
            safe = safe[:MAX_FILENAME_CHARS]
    if not safe or safe == ".":
        raise ValueError("file name is empty once unsafe characters are removed")
    return safe


def seed_key(owner: str, filename: str) -> str:
    """The S3 key of an owner's (already sanitized) seed file."""
    return seed_prefix(owner) + filename


def owns_seed_key(owner: str, key: str) -> bool:
    """Whether ``key`` names a file directly under the owner's seed prefix."""
    prefix = seed_prefix(owner)
    if not key.startswith(prefix):
        return False
    name = key[len(prefix) :]
    try:
        return sanitize_filename(name) == name
    except ValueError:
        return False


def detect_format(file: IO[bytes], filename: str) -> SeedFormat:
    """The format the name's extension implies, else sniffed from the first bytes.

    Leaves the file positioned at its start.

    Raises:
        SeedError: when the file is empty.
    """
    fmt = format_from_name(filename)
    if fmt is None:
        file.seek(0)
        fmt = sniff_format(file.read(512))
    file.seek(0)
    return fmt


def validate_seed_file(file: IO[bytes], fmt: SeedFormat) -> int:
    """Read every record of a local seed file and return how many there are.

    Leaves the file positioned at its start.

    Raises:
        SeedError: naming the line and record of the first problem.
    """
    file.seek(0)
    try:
        return count_records(read_records(file, fmt))
    finally:
        file.seek(0)


def error_location(error: SeedError) -> dict[str, int]:
    """The ``line`` and ``record`` of a seed file error, as far as they are known."""
    return {k: v for k, v in (("line", error.line), ("record", error.record)) if v is not None}


def first_missing(
    records: Iterable[dict[str, Any]], requirements: list[str], limit: int
) -> tuple[int, list[str]] | None:
    """The first of the leading ``limit`` records that lacks required fields.

    Returns:
        ``(record number counted from 1, missing dotted paths)``, or None when
        every record checked has every field.
    """
    iterator: Iterator[dict[str, Any]] = iter(records)
    try:
        for number, record in enumerate(iterator, start=1):
            missing = missing_fields(record, requirements)
            if missing:
                return number, missing
            if number >= limit:
                break
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
    return None


@dataclass
class ValidationReport:
    """What a full pass over a seed file found."""

    records_checked: int = 0
    records_missing_fields: int = 0
    examples: list[tuple[int, list[str]]] = field(default_factory=list)
    parse_error: SeedError | None = None
    format: SeedFormat | None = None

    @property
    def valid(self) -> bool:
        """Readable to the end and no record lacks a field."""
        return self.parse_error is None and self.records_missing_fields == 0


def validate_records(
    records: Iterable[dict[str, Any]], requirements: list[str], examples: int
) -> ValidationReport:
    """Check every record against the requirements, stopping at the first parse error.

    Memory holds one record and at most ``examples`` examples.
    """
    report = ValidationReport()
    iterator: Iterator[dict[str, Any]] = iter(records)
    try:
        for record in iterator:
            report.records_checked += 1
            missing = missing_fields(record, requirements)
            if missing:
                report.records_missing_fields += 1
                if len(report.examples) < examples:
                    report.examples.append((report.records_checked, missing))
    except SeedError as exc:
        report.parse_error = exc
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            close()
    return report
