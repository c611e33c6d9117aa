"""The scheduler keeps a started job's plan: read once, bounded in count and size."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from palette.common.pricing import load_pricing
from palette.scheduler import lifecycle
from palette.scheduler.lifecycle import Scheduler
from palette.scheduler.partitioning import SeedSummary
from palette.scheduler.settings import SchedulerSettings

pytestmark = pytest.mark.unit

MODEL = "amazon.nova-micro-v1:0"


def job_doc(job_id: str, prompt: str = "About {{ topic }}", started: bool = True) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": job_id,
        "template": {"steps": [{"id": "a", "model": MODEL, "prompt": prompt}]},
        "seed_key": f"seed-data/u/{job_id}.jsonl",
        "seed_count": None,
        "record_estimate": None,
    }
    if started:
        doc |= {"seed_count": 7, "record_estimate": 1234}
    return doc


class FakeJobs:
    """The one repository read ``Scheduler.plan`` makes, counted."""

    def __init__(self, *docs: dict[str, Any]) -> None:
        self.docs = {doc["_id"]: doc for doc in docs}
        self.reads: list[str] = []

    async def job(self, job_id: str) -> dict[str, Any] | None:
        self.reads.append(job_id)
        await asyncio.sleep(0)
        return self.docs.get(job_id)


def scheduler(repo: FakeJobs) -> Scheduler:
    async def no_seeds(_key: str) -> SeedSummary:
        raise AssertionError("not used")

    return Scheduler(
        repo,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]
        load_pricing(None),
        SchedulerSettings(),
        no_seeds,
    )


class TestJobPlans:
    async def test_a_started_job_is_read_once(self) -> None:
        repo = FakeJobs(job_doc("j1"))
        sched = scheduler(repo)
        first = await sched.plan("j1")
        assert first is not None
        assert (first.seed_key, first.seed_count, first.record_estimate) == (
            "seed-data/u/j1.jsonl",
            7,
            1234,
        )
        assert first.template.steps[0].prompt == "About {{ topic }}"
        assert await sched.plan("j1") is first
        assert repo.reads == ["j1"]

    async def test_concurrent_first_reads_keep_one_plan(self) -> None:
        repo = FakeJobs(job_doc("j1"))
        sched = scheduler(repo)
        plans = await asyncio.gather(*(sched.plan("j1") for _ in range(5)))
        assert all(plan is plans[0] for plan in plans)
        assert await sched.plan("j1") is plans[0]
        assert len(repo.reads) == 5
        assert sched._plan_chars == plans[0].chars  # counted once

    async def test_a_job_not_started_or_gone_has_no_plan_and_is_read_again(self) -> None:
        repo = FakeJobs(job_doc("queued", started=False))
        sched = scheduler(repo)
        assert await sched.plan("queued") is None
        assert await sched.plan("gone") is None
        repo.docs["queued"] = job_doc("queued")
        plan = await sched.plan("queued")
        assert plan is not None
        assert plan.seed_count == 7
        assert repo.reads == ["queued", "gone", "queued"]

    async def test_plans_are_bounded_by_count(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(lifecycle, "PLANS_KEPT", 2)
        repo = FakeJobs(*(job_doc(f"j{i}") for i in range(3)))
        sched = scheduler(repo)
        for job_id in ("j0", "j1", "j0", "j2"):  # j1 is the least recently used
            await sched.plan(job_id)
        repo.reads.clear()
        await sched.plan("j0")
        await sched.plan("j2")
        assert repo.reads == []
        await sched.plan("j1")
        assert repo.reads == ["j1"]

    async def test_plans_are_bounded_by_template_size(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(lifecycle, "PLAN_CHARS_KEPT", 250)
        repo = FakeJobs(*(job_doc(f"j{i}", prompt="x" * 100) for i in range(3)))
        sched = scheduler(repo)
        for job_id in ("j0", "j1", "j2"):
            await sched.plan(job_id)
        repo.reads.clear()
        await sched.plan("j1")
        await sched.plan("j2")
        assert repo.reads == []
        await sched.plan("j0")  # dropped when j2 came: 300 characters > 250
        assert repo.reads == ["j0"]

    async def test_a_plan_larger_than_the_size_bound_is_not_kept_and_drops_none(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(lifecycle, "PLAN_CHARS_KEPT", 250)
        repo = FakeJobs(job_doc("small", prompt="x" * 100), job_doc("huge", prompt="x" * 300))
        sched = scheduler(repo)
        await sched.plan("small")
        huge = await sched.plan("huge")
        assert huge is not None
        assert huge.chars > 250
        repo.reads.clear()
        await sched.plan("small")
        assert repo.reads == []
        await sched.plan("huge")
        assert repo.reads == ["huge"]
