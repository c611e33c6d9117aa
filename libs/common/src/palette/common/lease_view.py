"""The read side of accounting's ``leases``, for the services that read them.

Accounting writes one document per lease when it grants it and closes it when
the attempt that spent it has ended and its cost is settled (``closed``). The
scheduler finishes a job only when none of its leases is open, a generator
spends a lease only while it is open, and ``GET /usage`` counts what each lease
settled. Field names of the collection are spelled here and in accounting only.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

LEASES = "leases"
"""The collection (written by accounting only)."""

Database = AsyncDatabase[dict[str, Any]]


async def open_leases(db: Database, job_id: str) -> int:
    """Leases of the job that accounting has not closed yet."""
    return await db[LEASES].count_documents({"job_id": job_id, "closed": False})


async def lease_closed(db: Database, lease_id: str) -> bool:
    """Whether the lease can no longer be spent: accounting closed it, or it is gone.

    Accounting writes a lease before it is granted, so a lease that is not
    there was purged with its deleted job.
    """
    doc = await db[LEASES].find_one({"_id": lease_id}, {"closed": 1})
    return doc is None or bool(doc.get("closed"))


async def leases_granted(
    db: Database, job_ids: Iterable[str], start: datetime, end: datetime
) -> list[dict[str, Any]]:
    """The leases of these jobs granted in ``[start, end)``.

    Each with ``job_id``, ``created_at`` (when it was granted), ``usage``
    (``<step>`` -> ``model_id``, ``calls``, ``input_tokens``, ``output_tokens``,
    ``cost``) and ``settled`` (all it settled, usage detail or not).
    """
    cursor = db[LEASES].find(
        {"job_id": {"$in": list(job_ids)}, "created_at": {"$gte": start, "$lt": end}},
        {"job_id": 1, "created_at": 1, "usage": 1, "settled": 1},
    )
    return [doc async for doc in cursor]
