"""A user's preview budget: every previewed record's worst case is reserved before any runs.

Accounting owns the ledger; the gateway asks it (``ReservePreviewBudget``,
request/reply) to reserve the record's worst case from what the owner may
still spend on previews that UTC day (``PALETTE_GATEWAY_PREVIEW_BUDGET_USD``).
The reservation is one atomic update, so concurrent previews never hold more
than the budget. The generator reports what the preview really cost
(``PreviewCompleted``), which settles the reservation.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, time, timedelta

import structlog

from palette.common.messages import (
    PreviewBudgetResult,
    PreviewCompleted,
    ReservePreviewBudget,
    preview_completed_id,
    utcnow,
)
from palette.common.money import usd_string, usd_to_picos
from palette.gateway.ports import GatewayRuntime
from palette.gateway.problems import Problem, field_error

log = structlog.get_logger("palette.gateway.preview_budget")

RETRY_SECONDS = 5
"""Retry-After when previews still running hold the budget a new one needs."""


def seconds_to_next_day(now: datetime) -> int:
    """Whole seconds from ``now`` until the next UTC day begins (at least 1)."""
    tomorrow = datetime.combine(now.astimezone(UTC).date() + timedelta(days=1), time(), UTC)
    return max(1, int((tomorrow - now).total_seconds() + 0.999))


def refusal(answer: PreviewBudgetResult, worst: int, now: datetime) -> Problem:
    """The 429 of a preview whose worst case does not fit in what is left of the day's budget."""
    left, needed = usd_string(answer.available), usd_string(worst)
    frees_up = answer.limit - answer.spent >= worst
    when = (
        "previews still running hold the rest; try again when they finish"
        if frees_up
        else "it renews at 00:00 UTC"
    )
    detail = (
        f"the preview's worst case ({needed} USD) does not fit in what is left of your preview "
        f"budget of {answer.day.isoformat()}: {left} of {usd_string(answer.limit)} USD; {when}"
    )
    retry = RETRY_SECONDS if frees_up else seconds_to_next_day(now)
    return Problem(
        429,
        detail,
        slug="preview-budget-exhausted",
        headers={"Retry-After": str(retry)},
        errors=[field_error("run", "the preview budget is exhausted", available_usd=left)],
        extensions={
            "day": answer.day.isoformat(),
            "budget_usd": usd_string(answer.limit),
            "spent_usd": usd_string(answer.spent),
            "reserved_usd": usd_string(answer.reserved),
            "available_usd": left,
            "needed_usd": needed,
        },
    )


async def _reserve(
    runtime: GatewayRuntime, owner: str, template_id: str, worst: int, deadline: datetime
) -> PreviewBudgetResult:
    """Ask accounting to reserve ``worst`` for a new preview (503 when it does not answer)."""
    settings = runtime.settings
    preview_id = uuid.uuid4().hex
    request = ReservePreviewBudget(
        message_id=f"reserve-{preview_id}",
        preview_id=preview_id,
        owner=owner,
        template_id=template_id,
        amount=worst,
        limit=usd_to_picos(settings.preview_budget_usd),
        deadline=deadline,
    )
    wait = settings.preview_budget_timeout_seconds
    try:
        return await runtime.publisher.request(request, PreviewBudgetResult, wait)
    except TimeoutError:
        raise Problem(
            503,
            f"accounting did not reserve the preview's budget within {wait:g} s; try again shortly",
            headers={"Retry-After": str(RETRY_SECONDS)},
        ) from None


async def release(runtime: GatewayRuntime, owner: str, preview_ids: list[str]) -> None:
    """Settle reservations whose records will not run at zero (no model was called).

    If the broker cannot take that now, the reservations are released when they
    expire, as for a gateway that stopped half way.
    """
    for preview_id in preview_ids:
        message = PreviewCompleted(
            message_id=preview_completed_id(preview_id), preview_id=preview_id, owner=owner
        )
        try:
            await runtime.publisher.publish(message)
        except Exception:
            log.warning("preview_release_failed", preview_id=preview_id, exc_info=True)


async def reserve_previews(
    runtime: GatewayRuntime,
    owner: str,
    template_id: str,
    worsts: list[int],
    deadlines: list[datetime],
) -> list[str]:
    """Reserve every record's worst case before any record runs: all of them, or none.

    Returns the preview ids (each record's ``PreviewRecord`` message id), in order.
    When one does not fit, those already granted are released at once and the
    429 names the whole preview's worst case, so a preview is refused before
    any of its records is billed, never half way.

    Raises:
        Problem: 429 when the sum does not fit in the budget, 503 when accounting does not answer.
    """
    granted: list[str] = []
    try:
        for worst, deadline in zip(worsts, deadlines, strict=True):
            answer = await _reserve(runtime, owner, template_id, worst, deadline)
            if not answer.granted:
                held = sum(worsts[: len(granted)])
                before = answer.model_copy(
                    update={
                        "available": answer.available + held,
                        "reserved": max(answer.reserved - held, 0),
                    }
                )
                raise refusal(before, sum(worsts), utcnow())
            granted.append(answer.preview_id)
    except BaseException:
        await release(runtime, owner, granted)
        raise
    return granted
