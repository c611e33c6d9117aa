"""``/jobs``: launch, list, read, cancel and delete generation jobs.

Every job read carries the job's ETag (the ``ETag`` header of ``GET
/jobs/{id}`` and ``etag`` in every job body); ``DELETE`` honours it as
``If-Match`` (``removal.py``). ``POST /jobs/{id}/cancel`` never deletes.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Response, delete, get, post
from litestar.datastructures import ResponseHeader
from litestar.di import NamedDependency
from litestar.params import FromPath, HeaderParameter, JSONBody, QueryParameter
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED, HTTP_202_ACCEPTED

from palette.common.ledger_view import LedgerView
from palette.common.messages import JobStatus
from palette.gateway import job_actions
from palette.gateway.job_views import job_view
from palette.gateway.openapi import problems, reply
from palette.gateway.pagination import job_cursor, job_position
from palette.gateway.ports import GatewayRuntime
from palette.gateway.problems import not_found
from palette.gateway.schemas import CancelOutcome, CancelResult, CreateJob, JobPage, JobView

ETAG_HEADER = ResponseHeader(
    name="ETag",
    description="The job's ETag: it changes with its status and export. "
    "Send it as `If-Match` with `DELETE /jobs/{id}`.",
    documentation_only=True,
)
CANCEL_DETAILS = {
    CancelOutcome.CANCEL_REQUESTED: "the job is being cancelled: it stops shortly and exports "
    "what it made; nothing is deleted",
    CancelOutcome.ALREADY_ENDED: "the job has ended ({status}); the cancel changed nothing",
}


async def owned_job(
    runtime: GatewayRuntime, owner: str, job_id: str, *, fresh: bool = False
) -> dict[str, Any]:
    """The caller's job, else 404 (another user's job is answered exactly like a missing one).

    ``fresh`` reads the database rather than a read shared for a moment: a
    cancel or delete decides on the job as it is.
    """
    job = await runtime.repository.find_job(job_id, owner, fresh=fresh)
    if job is None:
        raise not_found("job_id", f"no job {job_id!r}")
    return job


async def ledger_of(runtime: GatewayRuntime, job: dict[str, Any]) -> LedgerView:
    """The job's live ledger."""
    return await runtime.repository.ledger(str(job["_id"]), int(job["budget_picos"]))


class JobController(Controller):
    """A job belongs to its creator; another user's job answers 404."""

    path = "/jobs"
    tags = ["jobs"]

    @post(
        operation_id="createJob",
        summary="Launch a generation job",
        status_code=HTTP_201_CREATED,
        responses=problems(
            404, 413, extra={200: reply(JobView, "The job an earlier request with this key made")}
        ),
    )
    async def create(
        self,
        data: JSONBody[CreateJob],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
        idempotency_key: Annotated[
            str | None,
            HeaderParameter(
                name="Idempotency-Key",
                max_length=200,
                description="A retried create with the same key and body returns the same job "
                "(200) instead of making a second one.",
            ),
        ] = None,
    ) -> Response[JobView]:
        """Check everything, insert the job, then publish its SubmitJob.

        The job document is written before the reply; when the publish fails
        the job is still accepted (201) and the outbox publishes it later. 429
        when the caller already has the configured number of active jobs.
        """
        if idempotency_key is not None:
            earlier = await job_actions.replay(runtime, owner, data, idempotency_key)
            if earlier is not None:
                view = job_view(earlier, await ledger_of(runtime, earlier))
                return Response(view, status_code=HTTP_200_OK)
        doc, created = await job_actions.create_job(runtime, owner, data, idempotency_key)
        ledger = None if created else await ledger_of(runtime, doc)
        return Response(
            job_view(doc, ledger),
            status_code=HTTP_201_CREATED if created else HTTP_200_OK,
            headers={"Location": f"/jobs/{doc['_id']}"},
        )

    @get(
        operation_id="listJobs",
        summary="The caller's jobs, newest first",
        responses=problems(),
    )
    async def list_jobs(
        self,
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
        limit: Annotated[int, QueryParameter(ge=1, le=100, description="Page size.")] = 20,
        cursor: Annotated[
            str | None, QueryParameter(max_length=1000, description="`next_cursor` of a page.")
        ] = None,
        status: Annotated[
            list[JobStatus] | None, QueryParameter(description="Only jobs in these statuses.")
        ] = None,
    ) -> JobPage:
        """One page of jobs; pass ``next_cursor`` back as ``cursor`` for the next one."""
        before = job_position(cursor) if cursor else None
        statuses = [s.value for s in status or []]
        jobs = await runtime.repository.list_jobs(owner, statuses, before, limit + 1)
        page, more = jobs[:limit], len(jobs) > limit
        ledgers = await runtime.repository.ledgers(
            {str(job["_id"]): int(job["budget_picos"]) for job in page},
            final={str(job["_id"]) for job in page if JobStatus(job["status"]).is_final},
        )
        items = [runtime.views.view(job, ledgers[str(job["_id"])]) for job in page]
        last = page[-1] if more else None
        next_cursor = job_cursor(last["created_at"], str(last["_id"])) if last else None
        return JobPage(items=items, next_cursor=next_cursor)

    @get(
        "/{job_id:str}",
        operation_id="getJob",
        summary="A job's configuration, status, progress, cost and timestamps",
        responses=problems(404),
        response_headers=[ETAG_HEADER],
    )
    async def read(
        self,
        job_id: FromPath[str],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
    ) -> Response[JobView]:
        """Status, records done, money (settled, reserved, remaining), the export once written."""
        job = await owned_job(runtime, owner, job_id)
        view = job_view(job, await ledger_of(runtime, job))
        return Response(view, headers={"ETag": view.etag})

    @post(
        "/{job_id:str}/cancel",
        operation_id="cancelJob",
        summary="Cancel a queued or running job; never deletes anything",
        status_code=HTTP_202_ACCEPTED,
        responses=problems(404),
        response_headers=[ETAG_HEADER],
    )
    async def cancel(
        self,
        job_id: FromPath[str],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
    ) -> Response[CancelResult]:
        """Stop a queued or running job: it exports what it made and is kept.

        Idempotent: cancelling again, or cancelling a job that has ended
        (completed, failed, budget exceeded, cancelled), changes nothing and
        says so (`outcome` `ALREADY_ENDED`). Always 202 with the job as it was
        read; its status becomes CANCELLED once the scheduler has stopped it.
        """
        job = await owned_job(runtime, owner, job_id, fresh=True)
        outcome = await job_actions.cancel_job(runtime, owner, job)
        view = job_view(job, await ledger_of(runtime, job))
        detail = CANCEL_DETAILS[outcome].format(status=job["status"])
        return Response(
            CancelResult(outcome=outcome, detail=detail, job=view), headers={"ETag": view.etag}
        )

    @delete(
        "/{job_id:str}",
        operation_id="deleteJob",
        summary="Cancel a queued or running job; delete a finished one (If-Match: its ETag)",
        status_code=HTTP_202_ACCEPTED,
        responses=problems(404, 409, 412),
    )
    async def remove(
        self,
        job_id: FromPath[str],
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
        if_match: Annotated[
            str | None,
            HeaderParameter(
                name="If-Match",
                max_length=1000,
                description="The job's ETag as last read (or `*`): the request acts only while "
                "the job is still in that state, else 412 and nothing happens. Without it the "
                "request acts on the job's state now.",
            ),
        ] = None,
    ) -> JobView:
        """A queued or running job is cancelled: it stops and exports what it made.

        A finished job is deleted with its records, export and ledger: the job
        answers 404 once the scheduler has removed it. 409 while a finished
        job's export is still being written. 202 once the command is on the
        broker (the job changes shortly after).

        A cancel that races the job's end could delete the finished job: send
        ``If-Match`` with the ETag read (412 when the job changed meanwhile),
        or use ``POST /jobs/{id}/cancel``, which never deletes.
        """
        job = await owned_job(runtime, owner, job_id, fresh=True)
        await job_actions.remove_job(runtime, owner, job, if_match)
        return job_view(job, await ledger_of(runtime, job))
