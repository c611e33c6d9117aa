"""The scheduler's state machines: every legal move and every illegal one, and its decisions."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from palette.common.job_document import ExportStatus, paused_partitions
from palette.common.messages import JobStatus, PartitionOutcome
from palette.scheduler.states import (
    IN_FLIGHT,
    ExportEvent,
    IllegalTransitionError,
    JobEvent,
    PartitionEvent,
    PartitionStatus,
    completion_event,
    dispatched_under,
    export_blockers,
    export_move,
    failure_event,
    job_move,
    partition_move,
    pause_until,
    stop_event,
)

pytestmark = pytest.mark.unit

P, PE = PartitionStatus, PartitionEvent
J, JE = JobStatus, JobEvent
E, EE = ExportStatus, ExportEvent

PARTITION_LEGAL: dict[tuple[PartitionStatus, PartitionEvent], PartitionStatus] = {
    (P.PENDING, PE.CLAIM): P.RESERVING,
    (P.RESERVING, PE.RESERVED): P.DISPATCHED,
    (P.RESERVING, PE.DENIED): P.WAITING_BUDGET,
    (P.WAITING_BUDGET, PE.REOPEN): P.PENDING,
    (P.DISPATCHED, PE.DONE): P.DONE,
    (P.DISPATCHED, PE.LEASE_EXHAUSTED): P.PENDING,
    (P.DISPATCHED, PE.ATTEMPT_STOPPED): P.STOPPED,
    (P.DISPATCHED, PE.RETRY): P.PENDING,
    (P.DISPATCHED, PE.GIVE_UP): P.FAILED,
    (P.PENDING, PE.JOB_STOP): P.STOPPED,
    (P.WAITING_BUDGET, PE.JOB_STOP): P.STOPPED,
    (P.DISPATCHED, PE.PAUSE): P.PAUSED,
    (P.PAUSED, PE.RESUME): P.PENDING,
    (P.PAUSED, PE.JOB_STOP): P.STOPPED,
}
PARTITION_ILLEGAL = [
    pair for pair in itertools.product(P, PE) if pair not in PARTITION_LEGAL
]  # fmt: skip

JOB_LEGAL: dict[tuple[JobStatus, JobEvent], JobStatus] = {
    (J.QUEUED, JE.START): J.RUNNING,
    (J.QUEUED, JE.REFUSE): J.FAILED,
    (J.QUEUED, JE.CANCEL): J.CANCELLED,
    (J.RUNNING, JE.CANCEL): J.CANCELLED,
    (J.QUEUED, JE.EXCEED_BUDGET): J.BUDGET_EXCEEDED,
    (J.RUNNING, JE.EXCEED_BUDGET): J.BUDGET_EXCEEDED,
    (J.QUEUED, JE.FAIL): J.FAILED,
    (J.RUNNING, JE.FAIL): J.FAILED,
    (J.RUNNING, JE.EXPORTED): J.COMPLETED,
    (J.RUNNING, JE.EXPORT_FAILED): J.FAILED,
}
JOB_ILLEGAL = [pair for pair in itertools.product(J, JE) if pair not in JOB_LEGAL]

EXPORT_LEGAL: dict[tuple[ExportStatus | None, ExportEvent], ExportStatus] = {
    (None, EE.REQUEST): E.PENDING,
    (E.PENDING, EE.WRITTEN): E.DONE,
    (E.PENDING, EE.WRITE_FAILED): E.FAILED,
}
EXPORT_ILLEGAL = [
    pair for pair in itertools.product([None, *E], EE) if pair not in EXPORT_LEGAL
]  # fmt: skip


def ids(pair: Any) -> str:
    return "-".join(str(part) for part in pair)


class TestPartitionMoves:
    @pytest.mark.parametrize(("move", "target"), PARTITION_LEGAL.items(), ids=ids)
    def test_a_legal_move_leads_to_its_status(
        self, move: tuple[PartitionStatus, PartitionEvent], target: PartitionStatus
    ) -> None:
        assert partition_move(*move) is target

    @pytest.mark.parametrize("move", PARTITION_ILLEGAL, ids=ids)
    def test_an_illegal_move_is_refused_naming_the_event_and_the_status(
        self, move: tuple[PartitionStatus, PartitionEvent]
    ) -> None:
        current, event = move
        with pytest.raises(IllegalTransitionError, match=f"{event}.*{current}"):
            partition_move(current, event)

    @pytest.mark.parametrize("status", [P.DONE, P.FAILED, P.STOPPED])
    def test_an_ended_partition_never_moves_again(self, status: PartitionStatus) -> None:
        assert not [event for event in PE if (status, event) in PARTITION_LEGAL]

    def test_in_flight_partitions_are_the_ones_holding_a_lease_id_asked_for_or_out(self) -> None:
        assert {P.RESERVING, P.DISPATCHED} == IN_FLIGHT

    def test_statuses_are_stored_as_the_strings_they_always_were(self) -> None:
        stored = ["PENDING", "RESERVING", "DISPATCHED", "WAITING_BUDGET", "DONE", "FAILED"]
        assert [status.value for status in P] == [*stored, "STOPPED", "PAUSED"]
        assert P.DONE == "DONE"


class TestJobMoves:
    @pytest.mark.parametrize(("move", "target"), JOB_LEGAL.items(), ids=ids)
    def test_a_legal_move_leads_to_its_status(
        self, move: tuple[JobStatus, JobEvent], target: JobStatus
    ) -> None:
        assert job_move(*move) is target

    @pytest.mark.parametrize("move", JOB_ILLEGAL, ids=ids)
    def test_an_illegal_move_is_refused_naming_the_event_and_the_status(
        self, move: tuple[JobStatus, JobEvent]
    ) -> None:
        current, event = move
        with pytest.raises(IllegalTransitionError, match=f"{event}.*{current}"):
            job_move(current, event)

    @pytest.mark.parametrize("status", [s for s in J if s.is_final])
    def test_an_ended_job_never_moves_again(self, status: JobStatus) -> None:
        assert not [event for event in JE if (status, event) in JOB_LEGAL]


class TestExportMoves:
    @pytest.mark.parametrize(("move", "target"), EXPORT_LEGAL.items(), ids=ids)
    def test_a_legal_move_leads_to_its_status(
        self, move: tuple[ExportStatus | None, ExportEvent], target: ExportStatus
    ) -> None:
        assert export_move(*move) is target

    @pytest.mark.parametrize("move", EXPORT_ILLEGAL, ids=ids)
    def test_an_illegal_move_is_refused_naming_the_event_and_the_status(
        self, move: tuple[ExportStatus | None, ExportEvent]
    ) -> None:
        current, event = move
        with pytest.raises(IllegalTransitionError, match=f"{event}.*{current}"):
            export_move(current, event)


class TestStops:
    @pytest.mark.parametrize(
        ("status", "event"),
        [(J.CANCELLED, JE.CANCEL), (J.BUDGET_EXCEEDED, JE.EXCEED_BUDGET), (J.FAILED, JE.FAIL)],
    )
    def test_each_stop_status_has_its_event_that_leads_to_it(
        self, status: JobStatus, event: JobEvent
    ) -> None:
        assert stop_event(status) is event
        assert job_move(J.RUNNING, event) is status

    @pytest.mark.parametrize("status", [J.QUEUED, J.RUNNING, J.COMPLETED])
    def test_a_status_no_stop_gives_is_refused(self, status: JobStatus) -> None:
        with pytest.raises(ValueError, match=f"{status} is not a stop"):
            stop_event(status)


class TestPauses:
    def test_a_paused_partition_waits_the_pause_then_is_pending_again(self) -> None:
        now = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
        assert pause_until(now, 60.0) == now + timedelta(seconds=60)
        paused = partition_move(P.DISPATCHED, completion_event(PartitionOutcome.MODEL_UNAVAILABLE))
        assert partition_move(paused, PE.RESUME) is P.PENDING

    def test_a_paused_partition_holds_back_a_running_jobs_export_but_not_a_stopped_ones(
        self,
    ) -> None:
        assert P.PAUSED in export_blockers(job(J.RUNNING))  # type: ignore[operator]
        assert P.PAUSED not in IN_FLIGHT

    def test_a_running_job_shows_its_paused_partitions_and_the_latest_reason(self) -> None:
        early = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
        paused = {
            "3": {"reason": "model a away", "until": early},
            "5": {"reason": "model b away", "until": early + timedelta(seconds=5)},
        }
        assert paused_partitions({"status": "RUNNING", "paused": paused}) == (2, "model b away")
        assert paused_partitions({"status": "RUNNING", "paused": {}}) == (0, None)
        assert paused_partitions({"status": "CANCELLED", "paused": paused}) == (0, None)


class TestAttemptEnds:
    @pytest.mark.parametrize(
        ("outcome", "target"),
        [
            (PartitionOutcome.DONE, P.DONE),
            (PartitionOutcome.LEASE_EXHAUSTED, P.PENDING),
            (PartitionOutcome.JOB_STOPPED, P.STOPPED),
            (PartitionOutcome.MODEL_UNAVAILABLE, P.PAUSED),
        ],
    )
    def test_a_completed_attempt_moves_its_dispatched_partition_by_outcome(
        self, outcome: PartitionOutcome, target: PartitionStatus
    ) -> None:
        assert partition_move(P.DISPATCHED, completion_event(outcome)) is target

    @pytest.mark.parametrize(
        ("failures", "retryable", "lost", "event"),
        [
            (0, True, False, PE.RETRY),
            (1, True, False, PE.RETRY),
            (2, True, False, PE.GIVE_UP),  # the third failure of three attempts
            (0, False, False, PE.GIVE_UP),
            (2, True, True, PE.RETRY),  # a lost holder says nothing about the partition
            (9, False, True, PE.RETRY),
        ],
    )
    def test_a_failed_attempt_is_retried_until_max_attempts_unless_its_holder_was_lost(
        self, failures: int, retryable: bool, lost: bool, event: PartitionEvent
    ) -> None:
        decided = failure_event(
            failures=failures, retryable=retryable, lost_holder=lost, max_attempts=3
        )
        assert decided is event

    def test_a_granted_lease_is_applied_once_its_partition_is_dispatched_under_it(self) -> None:
        part = {"status": "DISPATCHED", "lease_id": "l1"}
        assert dispatched_under(part, "l1")
        assert not dispatched_under(part, "l2")
        assert not dispatched_under({"status": "RESERVING", "lease_id": "l1"}, "l1")


def job(status: JobStatus, export: dict[str, Any] | None = None, total: int | None = 3) -> Any:
    return {"_id": "j", "status": status.value, "export": export, "partitions_total": total}


class TestExportBlockers:
    def test_a_running_job_exports_once_every_partition_is_done(self) -> None:
        assert export_blockers(job(J.RUNNING)) == set(P) - {P.DONE}

    @pytest.mark.parametrize("status", [J.CANCELLED, J.BUDGET_EXCEEDED, J.FAILED])
    def test_a_stopped_job_exports_once_nothing_is_in_flight(self, status: JobStatus) -> None:
        assert export_blockers(job(status)) == IN_FLIGHT

    @pytest.mark.parametrize(
        "doc",
        [
            job(J.QUEUED, total=None),
            job(J.FAILED, total=0),  # refused before it started
            job(J.RUNNING, export={"status": "PENDING"}),
            job(J.CANCELLED, export={"status": "DONE"}),
            job(J.COMPLETED, export={"status": "DONE"}),
        ],
    )
    def test_a_job_that_does_not_export_now_has_none(self, doc: dict[str, Any]) -> None:
        assert export_blockers(doc) is None

    def test_a_running_job_with_every_slot_holding_a_lease_is_not_looked_at(self) -> None:
        # An attempt is in flight: its end (or its lease's closing) looks again.
        assert export_blockers({**job(J.RUNNING), "slots": ["l1", "l2"]}) is None
        assert export_blockers({**job(J.RUNNING), "slots": ["l1", None]}) == set(P) - {P.DONE}
        stopped = {**job(J.CANCELLED), "slots": ["l1", "l2"]}  # a stop may leave them held
        assert export_blockers(stopped) == IN_FLIGHT
