"""The batch inference jobs a held lease must still pay for: waited for, stopped, counted.

A batch job's entries are billed at the provider, not logged in the model
invocation log, and the attempt that submitted the job is the one whose lease
pays for it (a later attempt that resumes the job gives its records their
outputs and charges nothing). So when a lease is held, the reconciler also
counts, besides the logged calls:

- for a lost holder, every job recorded under the lease in ``batch_invocations``;
- for an attempt that ended with jobs it did not apply (its unknown calls named
  ``batch:<token>``), those jobs.

Each job is counted once it has ended (it bills nothing more), from its output:
every answered entry of its records, at the batch price. A job that still runs
while its job (Plot Palette's) is final is stopped (StopModelInvocationJob) and
counted once stopped. A job recorded without an ARN is found by its token's
name; one never created costs nothing. The collection is read only here (the
generator writes it), the stop is the only call that changes anything.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from pymongo.asynchronous.database import AsyncDatabase

from palette.accounting import ledger
from palette.common.batch_jobs import BATCH_CALL, COLLECTION, ENDED, BatchControl, usage_of
from palette.common.job_view import job_status
from palette.common.messages import StepUsage
from palette.common.pricing import PricingTable
from palette.common.service_tiers import BATCH

log = structlog.get_logger("palette.accounting.batches")

Doc = dict[str, Any]


def batch_query(lease: Doc) -> Doc | None:
    """The held lease's batch jobs to count (None: none can be)."""
    hold = lease["reconcile"]
    if hold["kind"] == "lost":
        return {"lease_id": lease["_id"]}
    tokens = [
        c.removeprefix(BATCH_CALL) for c in hold.get("calls") or [] if c.startswith(BATCH_CALL)
    ]
    return {"_id": {"$in": tokens}} if tokens else None


class LeaseBatches:
    """Counts held leases' batch jobs (``batch_invocations``, read-only) at the batch price."""

    def __init__(
        self, db: AsyncDatabase[Doc], control: BatchControl, pricing: PricingTable
    ) -> None:
        self.invocations = db[COLLECTION]
        self.db = db
        self.control = control
        self.pricing = pricing

    async def usage(self, lease: Doc) -> ledger.UsageMap | None:
        """What the lease's batch jobs billed; None while one of them still runs."""
        query = batch_query(lease)
        if query is None:
            return {}
        docs = await self.invocations.find(query).to_list(None)
        if not docs:
            return {}
        stop = await self._job_final(str(lease["job_id"]))
        rows: list[StepUsage] = []
        for doc in docs:
            counted = await asyncio.to_thread(self._count, doc, stop)
            if counted is None:
                return None
            rows += counted
        return ledger.usage_map(rows, self.pricing)

    async def _job_final(self, job_id: str) -> bool:
        status = await job_status(self.db, job_id)
        return status is None or status.is_final

    def _count(self, doc: Doc, stop: bool) -> list[StepUsage] | None:
        """One job's billed entries (blocking); None while it runs (stopping it if ``stop``)."""
        arn = doc.get("arn") or self.control.find(doc["_id"])
        if arn is None:
            return []
        status = self.control.status(arn)["status"]
        if status not in ENDED:
            if stop:
                log.info("batch_stopping", arn=arn, lease_id=doc["lease_id"], status=status)
                self.control.stop(arn)
            return None
        lines, _ = self.control.read_output(doc["output_prefix"], doc["input_key"], arn)
        calls, tokens_in, tokens_out = usage_of(lines, set(doc["records"]))
        log.info("batch_counted", arn=arn, lease_id=doc["lease_id"], status=status, calls=calls)
        if not calls:
            return []
        return [
            StepUsage(
                step_id=doc["step"],
                model_id=doc["model_id"],
                calls=calls,
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                service_tier=BATCH,
            )
        ]
