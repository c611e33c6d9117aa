"""Pure rules of cancelling and deleting a job: its ETag, ``If-Match``, what a request does.

A job's ETag names the state a removal decision depends on: its status and
whether its export is still being written. It does not change with progress
or cost, so a client that read a running job can cancel it with ``If-Match``
while records come in, and a ``DELETE`` meant for a running job can never
delete the job that finished meanwhile: its ETag changed, the answer is 412.
"""

from __future__ import annotations

import hashlib
import re
from enum import StrEnum
from typing import Any

from palette.common.job_document import export_settled
from palette.common.messages import JobStatus
from palette.gateway.schemas import CancelOutcome

_ENTITY_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e]*)"\s*(?:,|$)')


class Removal(StrEnum):
    """What a ``DELETE /jobs/{id}`` does."""

    CANCEL = "cancel"
    """The job is queued or running: it is cancelled (nothing is deleted)."""
    DELETE = "delete"
    """The job has ended and its export is settled: it is deleted with its data."""
    EXPORT_PENDING = "export-pending"
    """The job has ended and is still writing its export: 409, try again."""
    PRECONDITION_FAILED = "precondition-failed"
    """``If-Match`` names none of the job's current ETag: 412, nothing happens."""


def export_pending(job: dict[str, Any]) -> bool:
    """Whether a finished job's export is still to be written (it is not settled)."""
    return not export_settled(job)


def job_etag(job: dict[str, Any]) -> str:
    """The job's strong ETag, quoted as in the header: it changes with status and export."""
    export = job.get("export")
    export_status = export.get("status") if isinstance(export, dict) else None
    state = f"{job['_id']}\n{job['status']}\n{export_status}\n{export_pending(job)}"
    return '"' + hashlib.sha256(state.encode()).hexdigest()[:32] + '"'


def if_match_allows(header: str | None, etag: str) -> bool:
    """Whether an ``If-Match`` header lets a request change the resource whose ETag is ``etag``.

    No header allows (the request is unconditional); ``*`` allows any existing
    job; otherwise one of the listed entity tags must equal ``etag`` by strong
    comparison (RFC 9110 13.1.1: a weak tag never matches).

    Raises:
        ValueError: the header is not ``*`` or a comma-separated list of entity tags.
    """
    if header is None:
        return True
    if header.strip() == "*":
        return True
    tags = parse_entity_tags(header)
    return any(not weak and f'"{value}"' == etag for weak, value in tags)


def parse_entity_tags(header: str) -> list[tuple[bool, str]]:
    """``(weak, opaque value)`` of each entity tag of a comma-separated list.

    Raises:
        ValueError: anything else than such a list (or an empty one).
    """
    tags: list[tuple[bool, str]] = []
    position = 0
    while position < len(header):
        match = _ENTITY_TAG.match(header, position)
        if match is None or match.end() == position:
            raise ValueError(
                'expected "*" or entity tags in double quotes separated by commas, '
                f"as a job's ETag header gives them; got {header[:100]!r}"
            )
        tags.append((match.group(1) is not None, match.group(2)))
        position = match.end()
    if not tags:
        raise ValueError('expected "*" or at least one entity tag; the header is empty')
    return tags


def removal(job: dict[str, Any], if_match: str | None) -> Removal:
    """What a ``DELETE`` with this ``If-Match`` (None: absent) does to the job.

    The precondition is checked first (RFC 9110 13.2.2): a mismatch changes nothing.

    Raises:
        ValueError: a malformed ``If-Match``.
    """
    if not if_match_allows(if_match, job_etag(job)):
        return Removal.PRECONDITION_FAILED
    if not JobStatus(job["status"]).is_final:
        return Removal.CANCEL
    if export_pending(job):
        return Removal.EXPORT_PENDING
    return Removal.DELETE


def cancel_outcome(job: dict[str, Any]) -> CancelOutcome:
    """What a cancel does to the job: stop it, or nothing when it has ended."""
    if JobStatus(job["status"]).is_final:
        return CancelOutcome.ALREADY_ENDED
    return CancelOutcome.CANCEL_REQUESTED
