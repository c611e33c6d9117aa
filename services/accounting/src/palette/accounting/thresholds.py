"""Budget thresholds: announce once that a job spent 75 % and 90 % of its budget.

Checked after every change of a job's settled spend (a part settled, a lease
closed or reconciled). The ledger keeps the thresholds announced
(``thresholds``, added with ``$addToSet`` after the publish), so each is
announced once; a crash between the publish and the mark announces it again
with the same ``message_id`` (the event's id), and its delivery is made once.
The check costs one read of the ledger; the leases are read only when the
ledger's closed spend plus everything still held by open leases (an upper bound
of the live spend) reaches a threshold not announced yet.
"""

from __future__ import annotations

from faststream.rabbit import RabbitBroker

from palette.accounting.repository import LedgerRepository
from palette.common.broker import publish
from palette.common.ledger_view import read_ledger
from palette.common.messages import BudgetThresholdReached
from palette.common.webhooks import WebhookEvent, crossed_thresholds, event_id


async def announce(repo: LedgerRepository, broker: RabbitBroker, job_id: str) -> list[int]:
    """Publish ``BudgetThresholdReached`` for each threshold newly reached; which ones."""
    doc = await repo.ledgers.find_one(
        {"_id": job_id}, {"budget": 1, "spent": 1, "pending": 1, "thresholds": 1}
    )
    if doc is None:
        return []
    budget = int(doc["budget"])
    announced = [int(t) for t in doc.get("thresholds") or []]
    held = sum(int(v) for v in (doc.get("pending") or {}).values())
    if not crossed_thresholds(int(doc["spent"]) + held, budget, announced):
        return []
    view = await read_ledger(repo.ledgers.database, job_id, budget)
    reached = crossed_thresholds(view.spent, budget, announced)
    for threshold in reached:
        await publish(
            broker,
            BudgetThresholdReached(
                message_id=event_id(job_id, WebhookEvent.JOB_BUDGET_THRESHOLD, threshold),
                job_id=job_id,
                threshold=threshold,
                budget=budget,
                spent=view.spent,
            ),
        )
        await repo.ledgers.update_one({"_id": job_id}, {"$addToSet": {"thresholds": threshold}})
    return reached
