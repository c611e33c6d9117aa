"""When the scheduler pumps a job after a lease closes or an attempt fails (no I/O).

``PartitionDispatch`` with a repository that answers from memory and a pump
and finish check that only record being called: which one each message leads to.
"""

from __future__ import annotations

from typing import Any

import pytest

from palette.common import messages as m
from palette.scheduler.dispatch import PartitionDispatch
from palette.scheduler.lifecycle import JobPlan
from palette.scheduler.repository import Doc
from palette.scheduler.settings import SchedulerSettings

pytestmark = pytest.mark.unit

JOB = "job1"


class Repository:
    """The dispatch's repository calls, answered from memory."""

    def __init__(self, reopened: int = 0, moved: Doc | None = None) -> None:
        self.reopened = reopened
        self.moved = moved
        self.slots_given: list[str] = []

    async def reopen_waiting(self, job_id: str) -> int:
        return self.reopened

    async def partition(self, job_id: str, index: int) -> Doc:
        return {"_id": f"{job_id}:{index}", "failures": 0, "status": "PENDING"}

    async def move_partition(self, *args: Any, **kwargs: Any) -> Doc | None:
        return self.moved

    async def give_slot(self, job_id: str, lease_id: str) -> None:
        self.slots_given.append(lease_id)


class Dispatch(PartitionDispatch):
    def __init__(self, repo: Repository) -> None:
        self.repo = repo  # type: ignore[assignment]
        self.settings = SchedulerSettings()
        self.calls: list[str] = []

    async def pump(self, job_id: str) -> None:
        self.calls.append("pump")

    async def maybe_finish(self, job_id: str) -> None:
        self.calls.append("finish")

    async def plan(self, job_id: str) -> JobPlan | None:
        raise AssertionError("not asked for here")

    async def stop(self, job_id: str, status: m.JobStatus, reason: str) -> None:
        raise AssertionError("not asked for here")

    async def resend_exports(self) -> None:
        raise AssertionError("not asked for here")


def closed() -> m.LeaseClosed:
    return m.LeaseClosed(job_id=JOB, partition=0, lease_id="l1", spent=10, returned=5)


def failed() -> m.PartitionFailed:
    return m.PartitionFailed(job_id=JOB, partition=0, attempt=1, lease_id="l1", error="boom")


class TestLeaseClosed:
    async def test_a_closing_that_reopened_waiting_partitions_pumps(self) -> None:
        dispatch = Dispatch(Repository(reopened=2))
        await dispatch.lease_closed(closed())
        assert dispatch.calls == ["pump"]

    async def test_a_closing_that_reopened_none_only_looks_whether_the_job_is_done(self) -> None:
        dispatch = Dispatch(Repository(reopened=0))
        await dispatch.lease_closed(closed())
        assert dispatch.calls == ["finish"]


class TestFailed:
    async def test_a_failure_moved_now_is_retried_with_a_pump(self) -> None:
        repo = Repository(moved={"status": "DISPATCHED"})
        dispatch = Dispatch(repo)
        await dispatch.failed(failed())
        assert dispatch.calls == ["pump"]  # through wake: waiting partitions reopened, pump
        assert repo.slots_given == ["l1"]

    async def test_a_redelivered_failure_whose_move_was_made_still_pumps(self) -> None:
        # The first delivery may have died between the move and its pump.
        repo = Repository(moved=None)
        dispatch = Dispatch(repo)
        await dispatch.failed(failed())
        assert dispatch.calls == ["pump"]
        assert repo.slots_given == ["l1"]
