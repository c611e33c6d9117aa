"""An attempt's reads before its first call: made together, taken in order (in-memory fakes)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from palette.common import messages as m
from palette.common.seeds import SeedError
from palette.generator.storage import StoredPart
from tests.unit.test_generator_partition import (
    FakeJobs,
    FakeLeases,
    FakeModels,
    FakeStorage,
    command,
    run,
    runtime,
)

pytestmark = pytest.mark.unit

WAIT_SECONDS = 5.0


class WaitingStorage(FakeStorage):
    """Lists the parts only once the seeds and the incomplete records are being read."""

    def __init__(self) -> None:
        super().__init__()
        self.seeds_asked = threading.Event()
        self.incomplete_asked = threading.Event()
        self.overlapped = False

    def list_parts(self, job_id: str, start: int, end: int) -> list[StoredPart]:
        # Read one after the other, the seeds would be asked only after this returns.
        self.overlapped = self.seeds_asked.wait(WAIT_SECONDS) and self.incomplete_asked.wait(
            WAIT_SECONDS
        )
        return super().list_parts(job_id, start, end)

    def read_seeds(self, key: str, wanted: set[int]) -> dict[int, dict[str, Any]]:
        self.seeds_asked.set()
        return super().read_seeds(key, wanted)

    def read_incomplete(self, job_id: str, start: int, end: int) -> dict[int, Any]:
        self.incomplete_asked.set()
        return super().read_incomplete(job_id, start, end)


class BrokenSeeds(FakeStorage):
    """A seed file that cannot be read: ``error`` is raised."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def read_seeds(self, key: str, wanted: set[int]) -> dict[int, dict[str, Any]]:
        raise self.error


class HangingJobs(FakeJobs):
    """A status read that never answers; records that it was cancelled."""

    def __init__(self) -> None:
        super().__init__()
        self.cancelled = False

    async def status(self, job_id: str) -> m.JobStatus | None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        return None


async def test_the_reads_before_the_first_call_go_out_together() -> None:
    storage, models = WaitingStorage(), FakeModels()
    events = await run(command(), runtime(storage, models))
    assert storage.overlapped, "the seeds or incomplete records were read after the parts"
    end = events[-1]
    assert isinstance(end, m.PartitionCompleted)
    assert end.outcome is m.PartitionOutcome.DONE
    assert (end.records_done, len(models.requests)) == (12, 24)


async def test_a_stopped_job_ends_stopped_even_when_its_seeds_cannot_be_read() -> None:
    storage, models = BrokenSeeds(SeedError("no such object")), FakeModels()
    jobs = FakeJobs(m.JobStatus.CANCELLED)
    events = await run(command(), runtime(storage, models, jobs=jobs))
    end = events[-1]
    assert isinstance(end, m.PartitionCompleted)
    assert end.outcome is m.PartitionOutcome.JOB_STOPPED
    assert models.requests == []


async def test_a_closed_lease_makes_no_call_even_when_its_seeds_cannot_be_read() -> None:
    storage, models = BrokenSeeds(SeedError("no such object")), FakeModels()
    events = await run(command(), runtime(storage, models, leases=FakeLeases(closed=True)))
    end = events[-1]
    assert isinstance(end, m.PartitionCompleted)
    assert end.outcome is m.PartitionOutcome.LEASE_EXHAUSTED
    assert models.requests == []


@pytest.mark.parametrize(
    ("error", "retryable", "says"),
    [
        (SeedError("line 3 is not JSON"), False, "cannot read the seed file"),
        (EndpointConnectionError(endpoint_url="http://s3"), True, "reading the seed file"),
    ],
)
async def test_a_seed_file_that_cannot_be_read_fails_the_attempt_before_any_call(
    error: Exception, retryable: bool, says: str
) -> None:
    storage, models, msg = BrokenSeeds(error), FakeModels(), command()
    events = await run(msg, runtime(storage, models))
    end = events[-1]
    assert isinstance(end, m.PartitionFailed)
    assert end.retryable is retryable
    assert says in end.error
    assert msg.seed_key in end.error
    assert models.requests == []


async def test_a_read_not_needed_is_cancelled_when_the_attempt_ends() -> None:
    jobs, models, msg = HangingJobs(), FakeModels(), command()
    rt = runtime(FakeStorage(), models, jobs=jobs)
    rt.stops.stop(msg.job_id, m.JobStatus.CANCELLED)  # the broadcast: the status is not read
    events = await asyncio.wait_for(run(msg, rt), WAIT_SECONDS)
    end = events[-1]
    assert isinstance(end, m.PartitionCompleted)
    assert end.outcome is m.PartitionOutcome.JOB_STOPPED
    assert jobs.cancelled
