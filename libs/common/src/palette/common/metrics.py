"""Prometheus metrics: the endpoint each process serves and what every service counts.

Every process serves its own ``/metrics`` on ``PALETTE_<SERVICE>_METRICS_PORT``
(0, the default on one machine, serves none), so N generators are N targets
and a sum over them is the system's total. Counters count what this process
did, once per effect (a redelivered message that changes nothing counts
nothing), so sums over replicas stay exact. ``palette_jobs`` is the
exception: it is read from MongoDB at scrape time, the same number from
whichever replica serves it (aggregate it with ``max``, never ``sum``).

Names of the series every service has:

* ``palette_received_messages_total{queue}``, ``palette_received_processed_messages_total
  {queue,status}``, ``palette_received_messages_in_process``, processing
  durations and sizes, ``palette_published_messages_total{destination,status}``:
  FastStream's Prometheus middleware (``queue`` is the consumer queue's name;
  empty on the publishing series).
* ``palette_messages_dead_lettered_total{queue,reason}``: messages this process
  sent to ``<queue>.dlq`` at once (unparsable, wrong shape, permanent error).
  Messages the broker dead-letters at the delivery limit are counted by
  RabbitMQ (the depth of ``<queue>.dlq``), not here.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import structlog
from faststream.rabbit.prometheus import RabbitPrometheusMiddleware
from prometheus_client import REGISTRY, Counter, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from palette.common.messages import JobStatus
from palette.common.topology import QueueSpec

log = structlog.get_logger("palette.metrics")

PICOS_PER_USD = 10**12
JOB_COUNT_TIMEOUT_SECONDS = 5.0

DEAD_LETTERED = Counter(
    "palette_messages_dead_lettered",
    "Messages this process sent to their dead-letter queue at once, by queue and reason.",
    ["queue", "reason"],
)


class MetricsPortError(RuntimeError):
    """The metrics port cannot be listened on (the message names the setting)."""


def usd(picos: int) -> float:
    """Picodollars as dollars, the unit of the ``*_dollars`` series."""
    return picos / PICOS_PER_USD


def serve(service: str, port: int) -> bool:
    """Serve this process's metrics on ``port`` (all interfaces); 0 serves nothing.

    Returns:
        Whether an endpoint was started.

    Raises:
        MetricsPortError: the port is taken or not allowed.
    """
    if port == 0:
        return False
    try:
        start_http_server(port)
    except OSError as exc:
        setting = f"PALETTE_{service.upper()}_METRICS_PORT"
        raise MetricsPortError(
            f"{setting}={port}: cannot serve metrics on port {port} ({exc.strerror or exc}); "
            "choose a free port, or 0 for no metrics endpoint"
        ) from exc
    log.info("metrics_served", port=port)
    return True


def message_metrics(queues: Iterable[QueueSpec]) -> RabbitPrometheusMiddleware:
    """FastStream's Prometheus middleware, labelling consumed messages with their queue."""
    by_route = {(spec.exchange.name, spec.routing_key): spec.name for spec in queues}

    def queue_of(raw: Any) -> str:
        if raw is None:  # a publish: the destination label names it
            return ""
        exchange, key = getattr(raw, "exchange", "") or "", getattr(raw, "routing_key", "") or ""
        return by_route.get((exchange, key)) or f"{exchange}:{key}"

    return RabbitPrometheusMiddleware(
        registry=REGISTRY, metrics_prefix="palette", custom_labels={"queue": queue_of}
    )


def job_status_family(counts: Mapping[str, int]) -> GaugeMetricFamily:
    """``palette_jobs{status}``: every status, 0 where no job has it."""
    family = GaugeMetricFamily(
        "palette_jobs",
        "Jobs by status, counted in MongoDB at scrape time (the same value from every "
        "replica: aggregate with max, not sum).",
        labels=["status"],
    )
    for status in JobStatus:
        family.add_metric([status.value], float(counts.get(status.value, 0)))
    return family


class JobStatusCollector(Collector):
    """Counts jobs by status in MongoDB when Prometheus scrapes.

    The count runs on the service's event loop (with its async client); the
    scrape thread waits for it at most ``timeout`` seconds. When the database
    does not answer, the scrape still succeeds: ``palette_jobs`` is left out
    and ``palette_jobs_counted`` is 0.
    """

    def __init__(
        self,
        jobs: Any,
        loop: asyncio.AbstractEventLoop,
        timeout: float = JOB_COUNT_TIMEOUT_SECONDS,
    ) -> None:
        self._jobs = jobs
        self._loop = loop
        self._timeout = timeout

    def describe(self) -> list[GaugeMetricFamily]:
        """The families, without querying (called at registration)."""
        return [job_status_family({}), self._counted(True)]

    async def counts(self) -> dict[str, int]:
        """Jobs per status, one aggregation."""
        cursor = await self._jobs.aggregate([{"$group": {"_id": "$status", "n": {"$sum": 1}}}])
        return {str(doc["_id"]): int(doc["n"]) async for doc in cursor}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Query (from the scrape thread) and yield the families."""
        with contextlib.suppress(RuntimeError):
            if asyncio.get_running_loop() is self._loop:
                # Called on the loop itself: waiting for the loop would deadlock.
                yield self._counted(False)
                return
        future = asyncio.run_coroutine_threadsafe(self.counts(), self._loop)
        try:
            counts = future.result(self._timeout)
        except Exception as exc:
            future.cancel()
            log.warning("job_count_failed", error=f"{type(exc).__name__}: {exc}")
            yield self._counted(False)
            return
        yield job_status_family(counts)
        yield self._counted(True)

    @staticmethod
    def _counted(ok: bool) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "palette_jobs_counted",
            "1 when the last scrape counted the jobs in MongoDB, 0 when it could not.",
            value=1.0 if ok else 0.0,
        )


@contextlib.contextmanager
def job_status_gauge(jobs: Any) -> Iterator[JobStatusCollector]:
    """Register ``palette_jobs`` (counted in ``jobs``) for the block, on the running loop."""
    collector = JobStatusCollector(jobs, asyncio.get_running_loop())
    REGISTRY.register(collector)
    try:
        yield collector
    finally:
        REGISTRY.unregister(collector)
