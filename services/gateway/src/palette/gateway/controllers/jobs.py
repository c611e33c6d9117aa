"""``/jobs``: launch, watch and cancel generation jobs."""

from __future__ import annotations

import uuid
from typing import Any

import structlog
from botocore.exceptions import ClientError
from litestar import Controller, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED

from palette.common.keys import seed_prefix
from palette.common.messages import CancelJob, JobStatus
from palette.common.seeds import SeedError
from palette.gateway import outbox
from palette.gateway.jobs import job_view, new_job_document, now_ms, submit_message
from palette.gateway.openapi import problems
from palette.gateway.ports import Runtime
from palette.gateway.problems import Problem, field_error, invalid, not_found
from palette.gateway.schemas import CreateJob, JobView
from palette.gateway.seedfiles import owns_seed_key
from palette.gateway.templating import unpriced_models

log = structlog.get_logger("palette.gateway")


async def _template(runtime: Runtime, owner: str, data: CreateJob) -> dict[str, Any]:
    repository = runtime.repository
    doc = await repository.find_template(data.template_id, owner, data.template_version)
    if doc is not None:
        return doc
    if data.template_version is not None and await repository.find_template(
        data.template_id, owner
    ):
        raise not_found(
            "template_version",
            f"template {data.template_id!r} has no version {data.template_version}",
        )
    raise not_found("template_id", f"no template {data.template_id!r}")


async def _check_seed(
    runtime: Runtime, owner: str, data: CreateJob, requirements: list[str]
) -> None:
    key = data.seed_key
    missing = not_found("seed_key", f"no seed file {key!r} under {seed_prefix(owner)}")
    if not owns_seed_key(owner, key) or not await runtime.seeds.exists(key):
        raise missing
    limit = runtime.settings.seed_check_records
    try:
        lacking = await runtime.seeds.check_records(key, requirements, limit)
    except SeedError as exc:
        where = {k: v for k, v in (("line", exc.line), ("record", exc.record)) if v is not None}
        raise invalid("seed_key", f"the seed file cannot be read: {exc}", **where) from None
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
            raise missing from None
        raise
    if lacking is not None:
        record, fields = lacking
        raise invalid(
            "seed_key",
            f"seed record {record} lacks fields the template needs: {', '.join(fields)}",
            record=record,
            missing=fields,
        )


class JobController(Controller):
    """A job belongs to its creator; another user's job answers 404."""

    path = "/jobs"
    tags = ["jobs"]

    @post(
        operation_id="createJob",
        summary="Launch a generation job",
        status_code=HTTP_201_CREATED,
        responses=problems(404, 422),
    )
    async def create(
        self,
        data: JSONBody[CreateJob],
        runtime: NamedDependency[Runtime],
        owner: NamedDependency[str],
    ) -> Response[JobView]:
        """Check everything, insert the job, then publish its SubmitJob.

        The job document is written before the reply; when the publish fails
        the job is still accepted (201) and the outbox publishes it later.
        """
        settings = runtime.settings
        if data.budget_usd > settings.max_budget_usd:
            raise invalid("budget_usd", f"must be at most {settings.max_budget_usd} USD")
        template = await _template(runtime, owner, data)
        unpriced = unpriced_models(template["steps"], runtime.pricing)
        if unpriced:
            problems = "; ".join(e["problem"] for e in unpriced)
            raise Problem(
                422,
                f"template {data.template_id!r} uses unpriced models: {problems}",
                errors=[
                    field_error("template_id", e["problem"], step=e["field"]) for e in unpriced
                ],
            )
        await _check_seed(runtime, owner, data, list(template.get("schema_requirements", [])))

        job_id = uuid.uuid4().hex
        partition_size = data.partition_size or settings.default_partition_size
        doc = new_job_document(
            job_id=job_id,
            owner=owner,
            request=data,
            template=template,
            partition_size=partition_size,
            now=now_ms(),
        )
        message = submit_message(doc)  # validates before anything is written
        await runtime.repository.insert_job(doc)
        log.info("job_created", job_id=job_id, owner=owner, num_records=data.num_records)
        if await outbox.submit(runtime.repository, runtime.publisher, message):
            doc["submit_published"] = True
        return Response(
            job_view(doc, None),
            status_code=HTTP_201_CREATED,
            headers={"Location": f"/jobs/{job_id}"},
        )

    @get(
        "/{job_id:str}",
        operation_id="getJob",
        summary="A job's status, progress and cost",
        responses=problems(404),
    )
    async def read(
        self, job_id: FromPath[str], runtime: NamedDependency[Runtime], owner: NamedDependency[str]
    ) -> JobView:
        """Status, records done, settled cost and the export once written."""
        job = await runtime.repository.find_job(job_id, owner)
        if job is None:
            raise not_found("job_id", f"no job {job_id!r}")
        ledger = await runtime.repository.find_ledger(job_id)
        return job_view(job, ledger)

    @delete(
        "/{job_id:str}",
        operation_id="cancelJob",
        summary="Cancel a queued or running job",
        status_code=HTTP_202_ACCEPTED,
        responses=problems(404, 409, 503),
    )
    async def cancel(
        self, job_id: FromPath[str], runtime: NamedDependency[Runtime], owner: NamedDependency[str]
    ) -> JobView:
        """Ask the scheduler to cancel the job; it exports what was made.

        202 once the CancelJob command is on the broker (the status moves
        shortly after); 409 when the job has already ended.
        """
        job = await runtime.repository.find_job(job_id, owner)
        if job is None:
            raise not_found("job_id", f"no job {job_id!r}")
        status = JobStatus(job["status"])
        if status.is_final:
            raise Problem(
                409,
                f"job {job_id!r} has already ended with status {status.value}",
                errors=[
                    field_error(
                        "job_id",
                        f"the job is {status.value}; only a queued or running job can be cancelled",
                    )
                ],
            )
        try:
            await runtime.publisher.publish(
                CancelJob(job_id=job_id, reason=f"cancelled by {owner}")
            )
        except Exception as exc:
            log.warning("cancel_not_published", job_id=job_id, error=repr(exc))
            raise Problem(
                503,
                "the cancel request could not be delivered; try again shortly",
                headers={"Retry-After": "5"},
            ) from None
        log.info("job_cancel_requested", job_id=job_id, owner=owner)
        ledger = await runtime.repository.find_ledger(job_id)
        return job_view(job, ledger)
