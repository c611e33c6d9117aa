"""Job actions: creating, cancelling and removing jobs, the checks and writes behind ``/jobs``.

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

from palette.common import record_filters
from palette.common.clients import is_missing
from palette.common.keys import seed_prefix
from palette.common.messages import CancelJob, DeleteJob
from palette.common.samplers import Stratify
from palette.common.seeds import SeedError
from palette.common.service_tiers import (
    JobMode,
    ServiceTier,
    UnpricedRateError,
    job_rate,
    require_rate,
)
from palette.common.targets import target_problem
from palette.common.templates import TemplateError
from palette.common.tracing import traceparent
from palette.gateway import outbox
from palette.gateway.job_views import (
    decimal_string,
    new_job_document,
    now_ms,
    submit_message,
    template_spec,
)
from palette.gateway.metrics import JOBS_CREATED
from palette.gateway.ports import GatewayRuntime
from palette.gateway.problems import Problem, field_error, invalid, not_found
from palette.gateway.removal import Removal, cancel_outcome, job_etag, removal
from palette.gateway.schemas import CancelOutcome, CreateJob
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


async def template_for(runtime: GatewayRuntime, owner: str, data: CreateJob) -> Document:
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


async def check_seed(
    runtime: GatewayRuntime, owner: str, key: str, requirements: list[str]
) -> None:
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
        if is_missing(exc):
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


async def _check(runtime: GatewayRuntime, owner: str, data: CreateJob) -> Document:
    settings = runtime.settings
    if data.budget_usd > settings.max_budget_usd:
        raise invalid("budget_usd", f"must be at most {settings.max_budget_usd} USD")
    target = target_problem(data.target, data.num_records, data.max_generated)
    if target is not None:
        raise invalid("max_generated", target)
    if data.mode is JobMode.BATCH and data.service_tier is not ServiceTier.DEFAULT:
        raise invalid("service_tier", "a service tier applies to online calls only (mode batch)")
    template = await template_for(runtime, owner, data)
    unpriced = unpriced_models(template["steps"], runtime.pricing)
    if unpriced:
        problems = "; ".join(e["problem"] for e in unpriced)
        raise Problem(
            422,
            f"template {data.template_id!r} uses unpriced models: {problems}",
            errors=[field_error("template_id", e["problem"], step=e["field"]) for e in unpriced],
        )
    rate = job_rate(data.mode, data.service_tier)
    try:
        spec = template_spec(template)
        require_rate(runtime.pricing, rate, spec.models, spec.steps)
    except UnpricedRateError as exc:
        field = "mode" if data.mode is JobMode.BATCH else "service_tier"
        raise invalid(field, str(exc), model=exc.model_id) from None
    try:
        record_filters.check(template_spec(template), data.keep_if, data.dedup)
    except TemplateError as exc:
        raise invalid(exc.field, exc.problem) from None
    requirements = list(template.get("schema_requirements", []))
    if isinstance(data.seed_sampling, Stratify) and data.seed_sampling.stratify not in requirements:
        requirements.append(data.seed_sampling.stratify)
    await check_seed(runtime, owner, data.seed_key, requirements)
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
    runtime: GatewayRuntime, owner: str, claim: Document, digest: str
) -> tuple[Document | None, str]:
    if claim["fingerprint"] != digest:
        raise invalid(
            "Idempotency-Key",
            "this key was used for a different request; use a new key for a new job",
        )
    job_id = str(claim["job_id"])
    return await runtime.repository.find_job(job_id, owner), job_id


async def create_job(
    runtime: GatewayRuntime, owner: str, data: CreateJob, idempotency_key: str | None
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
    runtime: GatewayRuntime, owner: str, data: CreateJob, idempotency_key: str
) -> Document | None:
    """The job an earlier request with this key created, before any other check."""
    if not IDEMPOTENCY_KEY.match(idempotency_key):
        return None
    claim = await runtime.repository.find_key(owner, idempotency_key)
    if claim is None:
        return None
    existing, _ = await _replay(runtime, owner, claim, fingerprint(data))
    return existing


async def _send(runtime: GatewayRuntime, message: CancelJob | DeleteJob) -> None:
    """Publish a cancel or delete, or answer 503 when the broker does not take it."""
    try:
        await runtime.publisher.publish(message)
    except Exception as exc:
        log.warning("removal_not_published", job_id=message.job_id, error=repr(exc))
        raise Problem(
            503,
            "the request could not be delivered; try again shortly",
            headers={"Retry-After": "5"},
        ) from None


def cancel_message(job_id: str, owner: str) -> CancelJob:
    """The CancelJob of a user's cancel (one id per job: every cancel is the same command)."""
    return CancelJob(message_id=f"cancel-{job_id}", job_id=job_id, reason=f"cancelled by {owner}")


async def remove_job(
    runtime: GatewayRuntime, owner: str, job: Document, if_match: str | None
) -> Removal:
    """Cancel a queued or running job, or delete a finished one; returns which.

    With ``If-Match``, only while the job's ETag is one it names (else 412 and
    nothing happens); without it, whatever the job's state is now.
    """
    job_id = str(job["_id"])
    try:
        action = removal(job, if_match)
    except ValueError as exc:
        raise invalid("If-Match", str(exc)) from None
    if action is Removal.PRECONDITION_FAILED:
        etag = job_etag(job)
        problem = (
            f"the job is {job['status']} now and its ETag is {etag}: it changed since it was "
            "read, so nothing was done; read the job again and decide"
        )
        raise Problem(
            412,
            problem,
            errors=[field_error("If-Match", problem)],
            headers={"ETag": etag},
            extensions={"etag": etag, "job_status": job["status"]},
        )
    if action is Removal.EXPORT_PENDING:
        raise Problem(
            409,
            f"job {job_id!r} has ended and is still writing its export; try again shortly",
            errors=[field_error("job_id", "the export is being written")],
            headers={"Retry-After": "2"},
        )
    if action is Removal.DELETE:
        await _send(runtime, DeleteJob(message_id=f"delete-{job_id}", job_id=job_id, owner=owner))
        await runtime.repository.forget_keys(job_id)
        log.info("job_delete_requested", job_id=job_id, owner=owner)
        return action
    await _send(runtime, cancel_message(job_id, owner))
    log.info("job_cancel_requested", job_id=job_id, owner=owner)
    return action


async def cancel_job(runtime: GatewayRuntime, owner: str, job: Document) -> CancelOutcome:
    """Cancel a queued or running job; a job that has ended is left as it is."""
    outcome = cancel_outcome(job)
    if outcome is CancelOutcome.CANCEL_REQUESTED:
        await _send(runtime, cancel_message(str(job["_id"]), owner))
    log.info("job_cancel_requested", job_id=str(job["_id"]), owner=owner, outcome=outcome.value)
    return outcome
