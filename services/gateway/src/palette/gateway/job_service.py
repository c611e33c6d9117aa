"""Creating and removing jobs: the checks and the order of writes behind ``/jobs``.

Creation checks everything first (budget, template, seed file, the user's
number of active jobs), then inserts the job and publishes its SubmitJob
through the outbox. An ``Idempotency-Key`` is claimed before the insert and
names the job id, so a retried create, even one racing the first, finds the
same job (200) instead of making a second one.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

import structlog
from botocore.exceptions import ClientError
from pymongo.errors import DuplicateKeyError

from palette.common.keys import seed_prefix
from palette.common.messages import CancelJob, DeleteJob, JobStatus
from palette.common.seeds import SeedError
from palette.common.tracing import traceparent
from palette.gateway import outbox
from palette.gateway.jobs import decimal_string, new_job_document, now_ms, submit_message
from palette.gateway.metrics import JOBS_CREATED
from palette.gateway.ports import Runtime
from palette.gateway.problems import Problem, field_error, invalid, not_found
from palette.gateway.schemas import CreateJob
from palette.gateway.seedfiles import error_location, owns_seed_key
from palette.gateway.templating import unpriced_models

log = structlog.get_logger("palette.gateway")

IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")
Document = dict[str, Any]


def fingerprint(data: CreateJob) -> str:
    """A digest of the request, to tell a retry from a different request under one key.

    Equal amounts are equal requests (``2.5`` and ``2.50``).
    """
    fields = data.model_dump(mode="json")
    fields["budget_usd"] = decimal_string(data.budget_usd)
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


async def template_for(runtime: Runtime, owner: str, data: CreateJob) -> Document:
    """The template version the job asks for (the caller's or public), else 404."""
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


async def check_seed(runtime: Runtime, owner: str, key: str, requirements: list[str]) -> None:
    """The seed file is the caller's, exists, and its leading records have the fields."""
    missing = not_found("seed_key", f"no seed file {key!r} under {seed_prefix(owner)}")
    if not owns_seed_key(owner, key) or not await runtime.seeds.exists(key):
        raise missing
    limit = runtime.settings.seed_check_records
    try:
        lacking = await runtime.seeds.check_records(key, requirements, limit)
    except SeedError as exc:
        raise invalid(
            "seed_key", f"the seed file cannot be read: {exc}", **error_location(exc)
        ) from None
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


async def _check(runtime: Runtime, owner: str, data: CreateJob) -> Document:
    settings = runtime.settings
    if data.budget_usd > settings.max_budget_usd:
        raise invalid("budget_usd", f"must be at most {settings.max_budget_usd} USD")
    template = await template_for(runtime, owner, data)
    unpriced = unpriced_models(template["steps"], runtime.pricing)
    if unpriced:
        problems = "; ".join(e["problem"] for e in unpriced)
        raise Problem(
            422,
            f"template {data.template_id!r} uses unpriced models: {problems}",
            errors=[field_error("template_id", e["problem"], step=e["field"]) for e in unpriced],
        )
    await check_seed(runtime, owner, data.seed_key, list(template.get("schema_requirements", [])))
    active = await runtime.repository.count_active_jobs(owner)
    if active >= settings.max_active_jobs:
        raise Problem(
            429,
            f"you have {active} jobs queued or running; at most {settings.max_active_jobs} "
            "may be at once: wait for one to end or cancel one",
            errors=[field_error("jobs", f"at most {settings.max_active_jobs} active jobs")],
            slug="too-many-active-jobs",
            headers={"Retry-After": "30"},
        )
    return template


async def _replay(
    runtime: Runtime, owner: str, claim: Document, digest: str
) -> tuple[Document | None, str]:
    if claim["fingerprint"] != digest:
        raise invalid(
            "Idempotency-Key",
            "this key was used for a different request; use a new key for a new job",
        )
    job_id = str(claim["job_id"])
    return await runtime.repository.find_job(job_id, owner), job_id


async def create_job(
    runtime: Runtime, owner: str, data: CreateJob, idempotency_key: str | None
) -> tuple[Document, bool]:
    """The job (inserted and submitted), and whether this call created it."""
    repository = runtime.repository
    digest = fingerprint(data)
    job_id = uuid.uuid4().hex
    if idempotency_key is not None and not IDEMPOTENCY_KEY.match(idempotency_key):
        raise invalid("Idempotency-Key", "1 to 200 visible ASCII characters")
    async with runtime.locks.hold(owner):
        template = await _check(runtime, owner, data)
        if idempotency_key is not None:
            claim = await repository.claim_key(owner, idempotency_key, job_id, digest, now_ms())
            if claim is not None:
                existing, job_id = await _replay(runtime, owner, claim, digest)
                if existing is not None:
                    return existing, False
        doc = new_job_document(
            job_id=job_id,
            owner=owner,
            request=data,
            template=template,
            now=now_ms(),
        )
        message = submit_message(doc)  # validates before anything is written
        if parent := traceparent():  # the outbox's republish continues this request's trace
            doc["traceparent"] = parent
        try:
            await repository.insert_job(doc)
        except DuplicateKeyError:
            found = await repository.find_job(job_id, owner)
            if found is None:
                raise
            return found, False
    JOBS_CREATED.inc()
    log.info("job_created", job_id=job_id, owner=owner, num_records=data.num_records)
    if await outbox.submit(repository, runtime.publisher, message):
        doc["submit_published"] = True
    return doc, True


async def replay(
    runtime: Runtime, owner: str, data: CreateJob, idempotency_key: str
) -> Document | None:
    """The job an earlier request with this key created, before any other check."""
    if not IDEMPOTENCY_KEY.match(idempotency_key):
        return None
    claim = await runtime.repository.find_key(owner, idempotency_key)
    if claim is None:
        return None
    existing, _ = await _replay(runtime, owner, claim, fingerprint(data))
    return existing


def export_pending(job: Document) -> bool:
    """Whether a finished job's export is still to be written."""
    export = job.get("export")
    if isinstance(export, dict):
        return export.get("status") == "PENDING"
    return bool(job.get("partitions_total"))


async def remove_job(runtime: Runtime, owner: str, job: Document) -> str:
    """Cancel a queued or running job, or delete a finished one; returns which."""
    job_id = str(job["_id"])
    status = JobStatus(job["status"])
    if status.is_final and export_pending(job):
        raise Problem(
            409,
            f"job {job_id!r} has ended and is still writing its export; try again shortly",
            errors=[field_error("job_id", "the export is being written")],
            headers={"Retry-After": "2"},
        )
    if status.is_final:
        message: CancelJob | DeleteJob = DeleteJob(
            message_id=f"delete-{job_id}", job_id=job_id, owner=owner
        )
    else:
        message = CancelJob(job_id=job_id, reason=f"cancelled by {owner}")
    try:
        await runtime.publisher.publish(message)
    except Exception as exc:
        log.warning("removal_not_published", job_id=job_id, error=repr(exc))
        raise Problem(
            503,
            "the request could not be delivered; try again shortly",
            headers={"Retry-After": "5"},
        ) from None
    if isinstance(message, DeleteJob):
        await runtime.repository.forget_keys(job_id)
        log.info("job_delete_requested", job_id=job_id, owner=owner)
        return "delete"
    log.info("job_cancel_requested", job_id=job_id, owner=owner)
    return "cancel"
