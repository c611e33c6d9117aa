"""Accounting's Prometheus series (served on ``PALETTE_ACCOUNTING_METRICS_PORT``).

Each series moves exactly when the ledger does (a redelivered message that
changes nothing moves nothing), so the sums over accounting replicas are the
ledgers' own totals: settled = the sum of the ledgers' ``spent``, and once
every lease is closed, reserved = settled + returned.
"""

from __future__ import annotations

from prometheus_client import Counter

RESERVED = Counter(
    "palette_budget_reserved_dollars", "Money granted to partitions as budget leases (USD)."
)
SETTLED = Counter(
    "palette_budget_settled_dollars",
    "Money added to the ledgers' spent as leases closed: the exact cost of their usage (USD).",
)
RETURNED = Counter(
    "palette_budget_returned_dollars",
    "Unspent lease money returned to the jobs' available budget as leases closed (USD).",
)
