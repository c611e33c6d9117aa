"""Job views built once per shared read (``readcache.py``), not once per request.

A page of jobs read from the shared read hands every request the same job
documents and ledgers until the read is refreshed; building twenty ``JobView``
models from them (money as strings, ETags, the export) was most of the CPU of
``GET /jobs`` (about 220 of 380 us in-process). ``JobViews`` keeps, per job,
the view and the two objects it was built from, and answers the kept view
while the request hands it those same objects (identity, not equality: a
refreshed read is a new object, so its view is built again). The documents are
the shared reads' own: nobody may change them (``MongoRepository.list_jobs``).

Pure logic.
"""

from __future__ import annotations

from typing import Any

from cachetools import FIFOCache

from palette.common.ledger_view import LedgerView
from palette.gateway.job_views import job_view
from palette.gateway.schemas import JobView

MAX_VIEWS = 10_000


class JobViews:
    """``job_view`` of a job document and its ledger, kept while they are the same objects."""

    def __init__(self, max_views: int = MAX_VIEWS) -> None:
        # job id -> (document, ledger, view); the job put longest ago goes first
        self._kept: FIFOCache[str, tuple[dict[str, Any], LedgerView | None, JobView]] = FIFOCache(
            max_views
        )

    def view(self, job: dict[str, Any], ledger: LedgerView | None) -> JobView:
        """The job's view: kept when built from these very objects, else built and kept."""
        job_id = str(job["_id"])
        kept = self._kept.get(job_id)
        if kept is not None and kept[0] is job and kept[1] is ledger:
            return kept[2]
        built = job_view(job, ledger)
        self._kept[job_id] = (job, ledger, built)
        return built
