"""The scheduler's state machines, as data and pure functions (no I/O).

Three statuses move: a job's (``JobStatus``), each of its partitions'
(``PartitionStatus``) and its export's (``ExportStatus``). Every move is named
by an event and allowed from a fixed set of statuses; the repository applies
a move as one conditional update whose filter is that set, so a redelivered
message or a second scheduler finds the status moved already and changes
nothing. The functions here say which moves are legal and what the scheduler
decides from an attempt's outcome; ``lifecycle.py`` does the I/O.

Partitions::

    PENDING --claim--> RESERVING --reserved--> DISPATCHED --done--> DONE
       ^  ^                |                       |-- lease exhausted / retry --> PENDING
       |  |              denied                    |-- attempt stopped --> STOPPED
       |  +-- reopen -- WAITING_BUDGET             |-- give up --> FAILED
       +----- resume -- PAUSED <--model unavailable+
    PENDING, WAITING_BUDGET, PAUSED --job stop--> STOPPED

Jobs: ``QUEUED --start--> RUNNING --exported--> COMPLETED``; a queued job is
refused (``FAILED``); a queued or running job is cancelled, runs out of
budget or fails; a running job whose export fails fails. Exports: null
``--request--> PENDING --written--> DONE`` or ``--write failed--> FAILED``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Generic, TypeVar

from palette.common.job_document import ExportStatus
from palette.common.messages import JobStatus, PartitionOutcome

S = TypeVar("S")
E = TypeVar("E", bound=StrEnum)


class PartitionStatus(StrEnum):
    """Where a partition of a job stands (its ``status`` in ``partitions``)."""

    PENDING = "PENDING"
    """To be claimed for a new lease."""
    RESERVING = "RESERVING"
    """Claimed with a lease id; accounting is asked for the lease."""
    DISPATCHED = "DISPATCHED"
    """A generator is asked to make its records under the lease."""
    WAITING_BUDGET = "WAITING_BUDGET"
    """Denied a lease; asks again when a lease of the job closes."""
    DONE = "DONE"
    """Every record made."""
    FAILED = "FAILED"
    """Failed too often; the job failed with it."""
    STOPPED = "STOPPED"
    """The job stopped before the partition was done."""
    PAUSED = "PAUSED"
    """A model it calls throttled every call for too long; dispatched again at ``paused_until``."""


IN_FLIGHT: frozenset[PartitionStatus] = frozenset(
    {PartitionStatus.RESERVING, PartitionStatus.DISPATCHED}
)
"""A lease is asked for or out: the partition holds a slot of the job's window."""


class PartitionEvent(StrEnum):
    """What moves a partition."""

    CLAIM = "claim"
    """The pump claims it for a new lease."""
    RESERVED = "reserved"
    """``BudgetReserved``: its lease is granted."""
    DENIED = "denied"
    """``BudgetDenied``: no lease fits now."""
    REOPEN = "reopen"
    """Money came back to the job (an attempt ended, a lease closed)."""
    DONE = "done"
    """``PartitionCompleted(done)``."""
    LEASE_EXHAUSTED = "lease_exhausted"
    """``PartitionCompleted(lease_exhausted)``: ask again for what one record needs."""
    ATTEMPT_STOPPED = "attempt_stopped"
    """``PartitionCompleted(job_stopped)``: the generator saw the job stop."""
    RETRY = "retry"
    """``PartitionFailed``, to be tried again under a new lease."""
    GIVE_UP = "give_up"
    """``PartitionFailed`` once too often: the job fails."""
    JOB_STOP = "job_stop"
    """The job stopped: partitions not started will not run."""
    PAUSE = "pause"
    """``PartitionCompleted(model_unavailable)``: wait before dispatching it again."""
    RESUME = "resume"
    """Its pause is over: it takes a new lease like any pending partition."""


class JobEvent(StrEnum):
    """What moves a job."""

    START = "start"
    """Partitions created: the job runs."""
    REFUSE = "refuse"
    """Refused before any model call (unknown model, bad template or seed file)."""
    CANCEL = "cancel"
    """``CancelJob``."""
    EXCEED_BUDGET = "exceed_budget"
    """``BudgetExceeded``: no lease can be granted any more."""
    FAIL = "fail"
    """A partition failed too often."""
    EXPORTED = "exported"
    """``ExportCompleted`` of a running job."""
    EXPORT_FAILED = "export_failed"
    """``ExportFailed`` of a running job."""


class ExportEvent(StrEnum):
    """What moves a job's export."""

    REQUEST = "request"
    """Nothing is left to run: ``ExportJob``."""
    WRITTEN = "written"
    """``ExportCompleted``."""
    WRITE_FAILED = "write_failed"
    """``ExportFailed``."""


class IllegalTransitionError(ValueError):
    """A move that the state machine does not allow from the current status."""


@dataclass(frozen=True, slots=True)
class Move(Generic[S]):
    """A move: allowed from ``sources`` (and only from them), it leads to ``target``."""

    sources: frozenset[S]
    target: S


ACTIVE: frozenset[JobStatus] = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
"""Statuses of a job that has not ended."""

_P = PartitionStatus
PARTITION_MOVES: Mapping[PartitionEvent, Move[PartitionStatus]] = {
    PartitionEvent.CLAIM: Move(frozenset({_P.PENDING}), _P.RESERVING),
    PartitionEvent.RESERVED: Move(frozenset({_P.RESERVING}), _P.DISPATCHED),
    PartitionEvent.DENIED: Move(frozenset({_P.RESERVING}), _P.WAITING_BUDGET),
    PartitionEvent.REOPEN: Move(frozenset({_P.WAITING_BUDGET}), _P.PENDING),
    PartitionEvent.DONE: Move(frozenset({_P.DISPATCHED}), _P.DONE),
    PartitionEvent.LEASE_EXHAUSTED: Move(frozenset({_P.DISPATCHED}), _P.PENDING),
    PartitionEvent.ATTEMPT_STOPPED: Move(frozenset({_P.DISPATCHED}), _P.STOPPED),
    PartitionEvent.RETRY: Move(frozenset({_P.DISPATCHED}), _P.PENDING),
    PartitionEvent.GIVE_UP: Move(frozenset({_P.DISPATCHED}), _P.FAILED),
    PartitionEvent.JOB_STOP: Move(
        frozenset({_P.PENDING, _P.WAITING_BUDGET, _P.PAUSED}), _P.STOPPED
    ),
    PartitionEvent.PAUSE: Move(frozenset({_P.DISPATCHED}), _P.PAUSED),
    PartitionEvent.RESUME: Move(frozenset({_P.PAUSED}), _P.PENDING),
}

_J = JobStatus
JOB_MOVES: Mapping[JobEvent, Move[JobStatus]] = {
    JobEvent.START: Move(frozenset({_J.QUEUED}), _J.RUNNING),
    JobEvent.REFUSE: Move(frozenset({_J.QUEUED}), _J.FAILED),
    JobEvent.CANCEL: Move(ACTIVE, _J.CANCELLED),
    JobEvent.EXCEED_BUDGET: Move(ACTIVE, _J.BUDGET_EXCEEDED),
    JobEvent.FAIL: Move(ACTIVE, _J.FAILED),
    JobEvent.EXPORTED: Move(frozenset({_J.RUNNING}), _J.COMPLETED),
    JobEvent.EXPORT_FAILED: Move(frozenset({_J.RUNNING}), _J.FAILED),
}

_E = ExportStatus
EXPORT_MOVES: Mapping[ExportEvent, Move[ExportStatus | None]] = {
    ExportEvent.REQUEST: Move(frozenset({None}), _E.PENDING),
    ExportEvent.WRITTEN: Move(frozenset({_E.PENDING}), _E.DONE),
    ExportEvent.WRITE_FAILED: Move(frozenset({_E.PENDING}), _E.FAILED),
}

STOPS: Mapping[JobStatus, JobEvent] = {
    JobStatus.CANCELLED: JobEvent.CANCEL,
    JobStatus.BUDGET_EXCEEDED: JobEvent.EXCEED_BUDGET,
    JobStatus.FAILED: JobEvent.FAIL,
}
"""The event that stops a job with each status a stop can give it."""

_OUTCOMES: Mapping[PartitionOutcome, PartitionEvent] = {
    PartitionOutcome.DONE: PartitionEvent.DONE,
    PartitionOutcome.LEASE_EXHAUSTED: PartitionEvent.LEASE_EXHAUSTED,
    PartitionOutcome.JOB_STOPPED: PartitionEvent.ATTEMPT_STOPPED,
    PartitionOutcome.MODEL_UNAVAILABLE: PartitionEvent.PAUSE,
}


def _apply(moves: Mapping[E, Move[S]], kind: str, current: S, event: E) -> S:
    move = moves[event]
    if current not in move.sources:
        allowed = ", ".join(sorted(str(source) for source in move.sources))
        raise IllegalTransitionError(
            f"{kind} event {event!s} is not allowed from {current!s} (only from {allowed})"
        )
    return move.target


def partition_move(current: PartitionStatus, event: PartitionEvent) -> PartitionStatus:
    """The partition's status after ``event``.

    Raises:
        IllegalTransitionError: ``event`` cannot happen to a partition in ``current``.
    """
    return _apply(PARTITION_MOVES, "partition", current, event)


def job_move(current: JobStatus, event: JobEvent) -> JobStatus:
    """The job's status after ``event``.

    Raises:
        IllegalTransitionError: ``event`` cannot happen to a job in ``current``.
    """
    return _apply(JOB_MOVES, "job", current, event)


def export_move(current: ExportStatus | None, event: ExportEvent) -> ExportStatus | None:
    """The export's status after ``event`` (``current`` None: no export asked for yet).

    Raises:
        IllegalTransitionError: ``event`` cannot happen to an export in ``current``.
    """
    return _apply(EXPORT_MOVES, "export", current, event)


def stop_event(status: JobStatus) -> JobEvent:
    """The event that stops a job with ``status``.

    Raises:
        ValueError: ``status`` is not one a stop gives (cancelled, budget exceeded, failed).
    """
    try:
        return STOPS[status]
    except KeyError:
        raise ValueError(
            f"a job is stopped as {', '.join(STOPS)}; {status!s} is not a stop"
        ) from None


def completion_event(outcome: PartitionOutcome) -> PartitionEvent:
    """The partition's event for an attempt that ended with ``outcome``."""
    return _OUTCOMES[outcome]


def failure_event(
    *, failures: int, retryable: bool, lost_holder: bool, max_attempts: int
) -> PartitionEvent:
    """Retry a failed attempt, or give the partition up.

    ``failures`` counts the partition's failed attempts before this one. An
    attempt that ended because its lease's holder was lost (a killed generator)
    says nothing about the partition: it is retried and does not count.
    """
    if lost_holder or (retryable and failures + 1 < max_attempts):
        return PartitionEvent.RETRY
    return PartitionEvent.GIVE_UP


def pause_until(now: datetime, pause_seconds: float) -> datetime:
    """When a partition paused now is dispatched again."""
    return now + timedelta(seconds=pause_seconds)


def dispatched_under(part: Mapping[str, Any], lease_id: str) -> bool:
    """Whether the partition is dispatched under this lease (a granted lease's answer applied)."""
    return bool(part["status"] == PartitionStatus.DISPATCHED and part["lease_id"] == lease_id)


def export_blockers(job: Mapping[str, Any]) -> frozenset[PartitionStatus] | None:
    """Partition statuses that hold back the job's export while a partition has one.

    A running job exports once every partition is done; a stopped job
    (cancelled, out of budget, failed) once none is in flight. None: the job
    does not export now (never started, queued, completed, its export is
    asked for already, or it is running with every in-flight slot holding a
    lease: an attempt is in flight, and its end looks again).
    """
    if job.get("export") is not None or not job.get("partitions_total"):
        return None
    status = JobStatus(job["status"])
    if status is JobStatus.RUNNING:
        slots = job.get("slots") or []
        if slots and None not in slots:
            return None
        return frozenset(PartitionStatus) - {PartitionStatus.DONE}
    if status in STOPS:
        return IN_FLIGHT
    return None
