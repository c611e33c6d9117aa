"""Reading Bedrock's model invocation logs: the provider's record of every billed call.

Pure logic, no I/O. A log object is gzipped (or plain) JSON Lines, one record per
invocation (``schemaType`` ``"ModelInvocationLog"``). The generator tags every
Converse call with ``requestMetadata`` (``lease_id``, ``step``, ``call_id``,
``holder``, ...), so the calls of a lease, or particular calls by id, can be
found and priced. Records of other schema types and records without a
``lease_id`` (calls of other systems, previews) are not Plot Palette's and are
skipped; a record that claims a lease but is malformed is an error, never
skipped, so nothing is silently under-counted.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from palette.common.service_tiers import ServiceTier

SCHEMA_TYPE = "ModelInvocationLog"
GZIP_MAGIC = b"\x1f\x8b"


class InvocationLogError(ValueError):
    """A log object or record that is not what Bedrock writes."""


@dataclass(frozen=True, slots=True)
class LoggedCall:
    """One billed call of a lease, as the invocation log records it."""

    request_id: str
    model_id: str
    input_tokens: int
    output_tokens: int
    lease_id: str
    step: str
    call_id: str | None = None
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    service_tier: str = "default"
    """The tier the generator asked for (its ``requestMetadata``): the call is priced at it."""


def model_id_of(value: str) -> str:
    """The model id of a log's ``modelId`` (a foundation-model ARN names its id)."""
    if value.startswith("arn:") and ":foundation-model/" in value:
        return value.rsplit("/", 1)[1]
    return value


def _count(
    record: dict[str, Any], part: str, name: str, where: str, default: int | None = None
) -> int:
    section = record.get(part)
    value = section.get(name, default) if isinstance(section, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise InvocationLogError(f"{where}: {part}.{name} must be a non-negative integer")
    return value


def parse_record(record: Any, where: str) -> LoggedCall | None:
    """A record as a ``LoggedCall``; None when it is not one of Plot Palette's calls.

    Raises:
        InvocationLogError: the record carries a lease id but lacks what pricing needs.
    """
    if not isinstance(record, dict):
        raise InvocationLogError(f"{where}: a record must be a JSON object")
    if record.get("schemaType") != SCHEMA_TYPE:
        return None
    metadata = record.get("requestMetadata")
    if not isinstance(metadata, dict) or not metadata.get("lease_id"):
        return None
    request_id, model = record.get("requestId"), record.get("modelId")
    if not isinstance(request_id, str) or not request_id:
        raise InvocationLogError(f"{where}: requestId is missing")
    if not isinstance(model, str) or not model:
        raise InvocationLogError(f"{where}: modelId is missing")
    call_id = metadata.get("call_id")
    return LoggedCall(
        request_id=request_id,
        model_id=model_id_of(model),
        input_tokens=_count(record, "input", "inputTokenCount", where),
        output_tokens=_count(record, "output", "outputTokenCount", where),
        lease_id=str(metadata["lease_id"]),
        step=str(metadata.get("step") or "unknown"),
        call_id=str(call_id) if call_id else None,
        cache_read_tokens=_count(record, "input", "cacheReadInputTokenCount", where, 0),
        cache_write_tokens=_count(record, "input", "cacheWriteInputTokenCount", where, 0),
        service_tier=_tier(metadata.get("service_tier")),
    )


def _tier(value: Any) -> str:
    """A logged call's service tier (a value that is none of them: the default)."""
    return value if value in {t.value for t in ServiceTier} else ServiceTier.DEFAULT.value


def parse_log_object(body: bytes, source: str) -> list[LoggedCall]:
    """Plot Palette's calls in one log object (gzipped or plain JSON Lines).

    Raises:
        InvocationLogError: the object is not JSON Lines of invocation records.
    """
    try:
        data = gzip.decompress(body) if body[:2] == GZIP_MAGIC else body
        text = data.decode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise InvocationLogError(f"{source}: not gzipped UTF-8 JSON Lines ({exc})") from None
    calls = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        where = f"{source} line {number}"
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise InvocationLogError(f"{where}: not JSON ({exc})") from None
        call = parse_record(record, where)
        if call is not None:
            calls.append(call)
    return calls


def unique(calls: Iterable[LoggedCall]) -> list[LoggedCall]:
    """Each request once (log delivery may repeat a record), in first-seen order."""
    seen: set[str] = set()
    out = []
    for call in calls:
        if call.request_id not in seen:
            seen.add(call.request_id)
            out.append(call)
    return out


def hours(since: datetime, until: datetime) -> Iterator[str]:
    """The ``yyyy/mm/dd/HH/`` folders of every hour from ``since``'s to ``until``'s (UTC)."""
    hour = since.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    until = until.astimezone(UTC)
    while hour <= until:
        yield f"{hour:%Y/%m/%d/%H}/"
        hour += timedelta(hours=1)
