"""Preview spend: reserve a worst case, settle what was spent, release what nobody settled."""

from __future__ import annotations

import asyncio

import structlog

from palette.accounting import previews
from palette.accounting.preview_repository import PreviewLedger
from palette.accounting.settings import AccountingSettings
from palette.common.broker import Context, PermanentError
from palette.common.messages import (
    PreviewBudgetResult,
    PreviewCompleted,
    ReservePreviewBudget,
    utcnow,
)
from palette.common.pricing import PricingTable, UnknownModelError

log = structlog.get_logger("palette.accounting.previews")


async def reserve_preview_budget(
    msg: ReservePreviewBudget,
    ledger: PreviewLedger = Context("previews"),
    settings: AccountingSettings = Context("settings"),
) -> PreviewBudgetResult:
    """Reserve the preview's worst case from its owner's budget of the day; the reply."""
    result = await ledger.reserve(msg, utcnow(), settings.preview_hold_seconds)
    log.info(
        "preview_budget_reserved" if result.granted else "preview_budget_denied",
        preview_id=msg.preview_id,
        owner=msg.owner,
        amount=msg.amount,
        limit=msg.limit,
        spent=result.spent,
        reserved=result.reserved,
        reason=result.reason,
    )
    return result


async def preview_completed(
    msg: PreviewCompleted,
    ledger: PreviewLedger = Context("previews"),
    pricing: PricingTable = Context("pricing"),
) -> None:
    """Charge what the preview spent, exactly, and release its reservation (once)."""
    try:
        charge = previews.charge(msg.usage, msg.unknown_worst, pricing)
    except UnknownModelError as exc:
        raise PermanentError(str(exc)) from exc
    applied = await ledger.settle(msg, charge, utcnow())
    log.info(
        "preview_settled",
        preview_id=msg.preview_id,
        owner=msg.owner,
        cost=charge.cost,
        unreconciled=charge.unreconciled,
        duplicate=not applied,
    )


async def release_expired_forever(ledger: PreviewLedger, interval: float) -> None:
    """Release, every ``interval`` seconds, the reservations past their expiry."""
    while True:
        try:
            released = await ledger.expire_due(utcnow())
        except Exception:  # the database may be away for a while: try again next time
            log.exception("preview_expiry_failed")
        else:
            if released:
                log.info("preview_reservations_released", previews=released)
        await asyncio.sleep(interval)
