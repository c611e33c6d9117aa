"""The broker topology, declared in one place.

Exchanges
    ``palette.commands`` (direct) carries commands, ``palette.events`` (topic)
    carries events, ``palette.broadcast`` (fanout) carries ``JobStopped`` to
    every generator at once, and ``palette.dlx`` (direct) receives dead letters.

Queues
    Every consumer queue is a durable quorum queue bound to one message type,
    with a delivery limit and a dead-letter queue ``<queue>.dlq`` behind
    ``palette.dlx``. Messages are published persistent, mandatory and with
    publisher confirms on a channel that raises on a returned message, so a
    publish that no queue takes is an error, not a silent loss. A reply to a
    request's ``reply_to`` is the exception: it is not mandatory (see
    ``broker.NonMandatoryReplies``).

Acknowledgement (see ``palette.common.broker``)
    FastStream's default policy rejects a failed message without requeueing
    it, and a plain publish is neither persistent nor checked for routing.
    Here a handler acknowledges only after its effects are durable, a
    transient error requeues the message (the quorum queue counts deliveries
    and dead-letters it at the limit, so nothing loops forever), and a message
    that can never succeed (unparsable, wrong shape) goes at once to its
    dead-letter queue with the reason in the ``x-palette-error`` header.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Final

from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue

from palette.common import messages as m

COMMANDS: Final = RabbitExchange("palette.commands", type=ExchangeType.DIRECT, durable=True)
EVENTS: Final = RabbitExchange("palette.events", type=ExchangeType.TOPIC, durable=True)
BROADCAST: Final = RabbitExchange("palette.broadcast", type=ExchangeType.FANOUT, durable=True)
DEAD_LETTERS: Final = RabbitExchange("palette.dlx", type=ExchangeType.DIRECT, durable=True)

DELIVERY_LIMIT: Final = 5
ERROR_HEADER: Final = "x-palette-error"
QUEUE_HEADER: Final = "x-palette-queue"

# Message type -> (exchange, routing key). Every publish looks its route up here.
ROUTES: Final[dict[type[m.Message], tuple[RabbitExchange, str]]] = {
    m.SubmitJob: (COMMANDS, "job.submit"),
    m.CancelJob: (COMMANDS, "job.cancel"),
    m.ReserveBudget: (COMMANDS, "budget.reserve"),
    m.GeneratePartition: (COMMANDS, "partition.generate"),
    m.ExportJob: (COMMANDS, "job.export"),
    m.BudgetReserved: (EVENTS, "budget.reserved"),
    m.BudgetDenied: (EVENTS, "budget.denied"),
    m.BudgetExceeded: (EVENTS, "budget.exceeded"),
    m.LeaseClosed: (EVENTS, "lease.closed"),
    m.RecordsGenerated: (EVENTS, "records.generated"),
    m.PartitionCompleted: (EVENTS, "partition.completed"),
    m.PartitionFailed: (EVENTS, "partition.failed"),
    m.ExportCompleted: (EVENTS, "export.completed"),
    m.ExportFailed: (EVENTS, "export.failed"),
    m.JobStatusChanged: (EVENTS, "job.status-changed"),
    m.JobStopped: (BROADCAST, ""),
    m.DeleteJob: (COMMANDS, "job.delete"),
    m.JobDeleted: (EVENTS, "job.deleted"),
    m.ExportSnapshot: (COMMANDS, "job.export-snapshot"),
    m.PreviewRecord: (COMMANDS, "template.preview"),
    m.ReservePreviewBudget: (COMMANDS, "preview.reserve-budget"),
    m.PreviewCompleted: (EVENTS, "preview.completed"),
    m.BudgetThresholdReached: (EVENTS, "budget.threshold-reached"),
    m.SendTestWebhook: (COMMANDS, "webhook.test"),
    m.ResendWebhookDelivery: (COMMANDS, "webhook.resend"),
}

# Notifications go to whoever listens (generators' broadcast queues, external
# systems); no listener is not an error, so they are not published mandatory.
NOTIFICATIONS: Final[frozenset[type[m.Message]]] = frozenset({m.JobStopped, m.JobStatusChanged})


@dataclass(frozen=True, slots=True)
class QueueSpec:
    """A consumer queue: its name and the message type bound to it."""

    name: str
    message: type[m.Message]

    @property
    def exchange(self) -> RabbitExchange:
        """Exchange the queue is bound to."""
        return ROUTES[self.message][0]

    @property
    def routing_key(self) -> str:
        """Routing key the queue is bound with."""
        return ROUTES[self.message][1]

    @property
    def dead_letter_queue(self) -> str:
        """Name of the queue that keeps this queue's dead letters."""
        return f"{self.name}.dlq"

    def queue(self) -> RabbitQueue:
        """The durable quorum queue, with delivery limit and dead-lettering."""
        return RabbitQueue(
            self.name,
            queue_type=QueueType.QUORUM,
            durable=True,
            routing_key=self.routing_key,
            arguments={
                "x-delivery-limit": DELIVERY_LIMIT,
                "x-dead-letter-exchange": DEAD_LETTERS.name,
                "x-dead-letter-routing-key": self.name,
            },
        )

    def dlq(self) -> RabbitQueue:
        """The dead-letter queue (durable quorum, no further dead-lettering)."""
        return RabbitQueue(
            self.dead_letter_queue,
            queue_type=QueueType.QUORUM,
            durable=True,
            routing_key=self.name,
        )


@dataclass(frozen=True, slots=True)
class BroadcastSpec:
    """A queue of one process on the broadcast exchange: every process gets every message.

    Each subscribing process declares its own queue, ``<name>.<random hex>``:
    classic, not durable, exclusive and deleted when the process disconnects.
    It is not part of the declared topology and has no dead-letter queue.
    """

    name: str
    message: type[m.Message]

    @property
    def exchange(self) -> RabbitExchange:
        """Exchange the queue is bound to (the fanout ``palette.broadcast``)."""
        return ROUTES[self.message][0]

    def queue(self) -> RabbitQueue:
        """A fresh queue of this process (gone when it disconnects)."""
        return RabbitQueue(
            f"{self.name}.{uuid.uuid4().hex}",
            queue_type=QueueType.CLASSIC,
            durable=False,
            exclusive=True,
            auto_delete=True,
        )


class Broadcasts:
    """Every broadcast subscription of the system."""

    JOB_STOPPED = BroadcastSpec("generator.job-stopped", m.JobStopped)


Subscription = QueueSpec | BroadcastSpec
"""What a handler consumes: a queue of the topology, or a process's broadcast queue."""


class Queues:
    """Every consumer queue of the system."""

    SUBMIT_JOB = QueueSpec("scheduler.submit-job", m.SubmitJob)
    CANCEL_JOB = QueueSpec("scheduler.cancel-job", m.CancelJob)
    SCHED_BUDGET_RESERVED = QueueSpec("scheduler.budget-reserved", m.BudgetReserved)
    SCHED_BUDGET_DENIED = QueueSpec("scheduler.budget-denied", m.BudgetDenied)
    SCHED_BUDGET_EXCEEDED = QueueSpec("scheduler.budget-exceeded", m.BudgetExceeded)
    SCHED_LEASE_CLOSED = QueueSpec("scheduler.lease-closed", m.LeaseClosed)
    SCHED_RECORDS = QueueSpec("scheduler.records-generated", m.RecordsGenerated)
    SCHED_PARTITION_COMPLETED = QueueSpec("scheduler.partition-completed", m.PartitionCompleted)
    SCHED_PARTITION_FAILED = QueueSpec("scheduler.partition-failed", m.PartitionFailed)
    SCHED_EXPORT_COMPLETED = QueueSpec("scheduler.export-completed", m.ExportCompleted)
    SCHED_EXPORT_FAILED = QueueSpec("scheduler.export-failed", m.ExportFailed)

    RESERVE_BUDGET = QueueSpec("accounting.reserve-budget", m.ReserveBudget)
    ACC_RECORDS = QueueSpec("accounting.records-generated", m.RecordsGenerated)
    ACC_PARTITION_COMPLETED = QueueSpec("accounting.partition-completed", m.PartitionCompleted)
    ACC_PARTITION_FAILED = QueueSpec("accounting.partition-failed", m.PartitionFailed)

    GENERATE_PARTITION = QueueSpec("generator.generate-partition", m.GeneratePartition)
    EXPORT_JOB = QueueSpec("generator.export-job", m.ExportJob)

    DELETE_JOB = QueueSpec("scheduler.delete-job", m.DeleteJob)
    ACC_JOB_DELETED = QueueSpec("accounting.job-deleted", m.JobDeleted)
    GEN_JOB_DELETED = QueueSpec("generator.job-deleted", m.JobDeleted)
    EXPORT_SNAPSHOT = QueueSpec("generator.export-snapshot", m.ExportSnapshot)
    PREVIEW_RECORD = QueueSpec("generator.preview-record", m.PreviewRecord)
    RESERVE_PREVIEW_BUDGET = QueueSpec("accounting.reserve-preview-budget", m.ReservePreviewBudget)
    ACC_PREVIEW_COMPLETED = QueueSpec("accounting.preview-completed", m.PreviewCompleted)

    # Webhooks: accounting turns job events into deliveries.
    ACC_JOB_STATUS_CHANGED = QueueSpec("accounting.job-status-changed", m.JobStatusChanged)
    ACC_BUDGET_THRESHOLD = QueueSpec("accounting.budget-threshold", m.BudgetThresholdReached)
    SEND_TEST_WEBHOOK = QueueSpec("accounting.send-test-webhook", m.SendTestWebhook)
    RESEND_WEBHOOK = QueueSpec("accounting.resend-webhook", m.ResendWebhookDelivery)

    @classmethod
    def all(cls) -> list[QueueSpec]:
        """Every queue spec, in declaration order."""
        return [v for v in vars(cls).values() if isinstance(v, QueueSpec)]
