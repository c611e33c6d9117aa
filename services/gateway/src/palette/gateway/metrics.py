"""The gateway's Prometheus series (served on ``PALETTE_GATEWAY_METRICS_PORT``).

Besides these, the broker's publishing series of ``palette.common.metrics``.
"""

from __future__ import annotations

from prometheus_client import Counter

JOBS_CREATED = Counter("palette_jobs_created", "Jobs this gateway process created (201 answers).")
