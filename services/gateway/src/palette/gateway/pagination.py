"""Opaque cursors of paged lists: the sort key of the last item, as URL-safe base64 JSON."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any

from palette.gateway.problems import invalid

MAX_CURSOR_CHARS = 1000


def encode_cursor(position: dict[str, Any]) -> str:
    """An opaque cursor holding ``position`` (JSON values only)."""
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, keys: tuple[str, ...]) -> dict[str, Any]:
    """The position in a cursor, which must hold exactly string values for ``keys``.

    Raises:
        Problem: 422 naming ``cursor`` when it is not one this API issued.
    """
    problem = invalid("cursor", "not a cursor this list issued; start again without one")
    if len(cursor) > MAX_CURSOR_CHARS:
        raise problem
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise problem from None
    if not isinstance(position, dict) or set(position) != set(keys):
        raise problem
    if not all(isinstance(position[k], str) and position[k] for k in keys):
        raise problem
    return position


def job_cursor(created_at: datetime, job_id: str) -> str:
    """The cursor after a job in the newest-first list."""
    return encode_cursor({"c": created_at.isoformat(), "i": job_id})


def job_position(cursor: str) -> tuple[datetime, str]:
    """``(created_at, job id)`` of a job cursor.

    Raises:
        Problem: 422 for a cursor that is not a job cursor.
    """
    position = decode_cursor(cursor, ("c", "i"))
    try:
        created = datetime.fromisoformat(position["c"])
    except ValueError:
        raise invalid("cursor", "not a cursor this list issued; start again without one") from None
    if created.tzinfo is None:
        raise invalid("cursor", "not a cursor this list issued; start again without one")
    return created, position["i"]


def template_cursor(template_id: str) -> str:
    """The cursor after a template in the list (ordered by id)."""
    return encode_cursor({"t": template_id})


def template_position(cursor: str) -> str:
    """The template id of a template cursor."""
    return str(decode_cursor(cursor, ("t",))["t"])
