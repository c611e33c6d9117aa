"""One thin handler per message: bind the log context, call the domain."""

from __future__ import annotations

import functools
from typing import Annotated

import structlog
from faststream.rabbit import RabbitBroker

from palette.common import messages as m
from palette.common.broker import Context, publish
from palette.generator.exporter import run_export
from palette.generator.metrics import PARTITIONS_IN_FLIGHT
from palette.generator.partition import run_partition
from palette.generator.runtime import CONTEXT_KEY, Runtime

log = structlog.get_logger("palette.generator.handlers")

RuntimeDep = Annotated[Runtime, Context(CONTEXT_KEY)]
BrokerDep = Annotated[RabbitBroker, Context("broker")]


async def generate_partition(msg: m.GeneratePartition, rt: RuntimeDep, broker: BrokerDep) -> None:
    """Generate a partition's missing records; acked after its end event is published.

    When the broker closes the delivery's channel (a consumer acknowledgement
    timeout on a long partition, a lost connection) the partition goes on
    (``palette.common.broker.RunToCompletion``) under its claim and publishes
    its end event; the redelivered message then finds the claim renewed, or
    done, and is dropped. Nothing already paid for is thrown away.
    """
    with structlog.contextvars.bound_contextvars(
        job_id=msg.job_id,
        partition_id=msg.partition,
        message_id=msg.message_id,
        attempt=msg.attempt,
    ):
        await _claimed_partition(msg, rt, broker)


async def _claimed_partition(msg: m.GeneratePartition, rt: Runtime, broker: RabbitBroker) -> None:
    async with rt.claims.claim(msg.lease_id, msg.job_id) as claim:
        if claim is None:
            log.info("duplicate_delivery_dropped", lease_id=msg.lease_id)
            return
        with PARTITIONS_IN_FLIGHT.track_inprogress():
            await run_partition(msg, rt, functools.partial(publish, broker), claim)


async def export_job(msg: m.ExportJob, rt: RuntimeDep, broker: BrokerDep) -> None:
    """Write the job's dataset; acked after ExportCompleted/ExportFailed is published."""
    with structlog.contextvars.bound_contextvars(
        job_id=msg.job_id, message_id=msg.message_id, output_format=msg.output_format.value
    ):
        await run_export(msg, rt, functools.partial(publish, broker))


async def job_stopped(msg: m.JobStopped, rt: RuntimeDep) -> None:
    """Remember that a job stopped: no new model call for it from now on."""
    if rt.stops.stop(msg.job_id, msg.status):
        log.info(
            "job_stopped", job_id=msg.job_id, status=msg.status.value, message_id=msg.message_id
        )
