"""The waves of a ``target: "kept"`` job (``palette.common.targets``): pure logic, no I/O.

The job document keeps ``planned_records`` (record indexes ``[0, planned)``
planned so far; ``num_records`` at the start) and, between waves, ``counted``:
what the last export counted (``generated``, ``kept``, ``rejected``,
``rejected_reasons``), which the dashboard shows while the next wave runs.
"""

from __future__ import annotations

from typing import Any

from palette.common.job_document import ExportStatus, export_status
from palette.common.targets import KEPT, more_records, shortfall

Doc = dict[str, Any]


def planned(job: Doc) -> int:
    """Record indexes planned so far."""
    return int(job.get("planned_records") or job["num_records"])


def kept(export: Doc) -> int:
    """Complete records an export kept in the dataset."""
    return int(export.get("records", 0)) - int(export.get("incomplete", 0))


def more(job: Doc) -> int:
    """Record indexes the job's next wave plans (0: it is done) once its export is written."""
    export = job.get("export") or {}
    if job.get("target") != KEPT or export_status(job) is not ExportStatus.DONE:
        return 0
    cap = int(job.get("max_generated") or job["num_records"])
    return more_records(int(job["num_records"]), planned(job), kept(export), cap)


def short_of_target(job: Doc) -> str | None:
    """Why a ``kept`` job completing now kept fewer than ``num_records`` (None: it did not)."""
    export = job.get("export") or {}
    if job.get("target") != KEPT:
        return None
    cap = int(job.get("max_generated") or job["num_records"])
    return shortfall(int(job["num_records"]), kept(export), planned(job), cap)


def next_wave_fields(export: Doc, planned_records: int, partitions_total: int) -> Doc:
    """The job's fields as its next wave starts: the count kept, the export cleared."""
    return {
        "planned_records": planned_records,
        "partitions_total": partitions_total,
        "export": None,
        "counted": {
            "kept": kept(export),
            "rejected": int(export.get("rejected", 0)),
            "rejected_reasons": dict(export.get("rejected_reasons") or {}),
        },
    }
