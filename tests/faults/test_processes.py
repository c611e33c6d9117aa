"""Crashed and restarted services: generators, accounting, the scheduler (cases 1, 2, 5)."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest

from palette.devstack.services import ServiceGroup, ServiceProcess
from tests.faults.conftest import FAULT_CASE_TIMEOUT, Rig
from tests.faults.harness import submit
from tests.integration.jobs import billed_count
from tests.integration.waiting import FINAL, wait_billed, wait_until

pytestmark = [pytest.mark.faults, pytest.mark.timeout(FAULT_CASE_TIMEOUT + 120)]


def working(generator: ServiceProcess) -> bool:
    """Whether the generator process is in the middle of a partition (its own log says)."""
    text = generator.log_text(since_start=True)
    began = text.count('"partition_started"')
    ended = text.count('"partition_completed"') + text.count('"partition_failed"')
    return began > ended


def busy_generator(group: ServiceGroup, timeout: float = 60) -> ServiceProcess:
    """A live generator in the middle of a partition (waiting for one if needed)."""
    return wait_until(
        lambda: next((g for g in group.generators if g.alive() and working(g)), None),
        what="a generator in the middle of a partition",
        timeout=timeout,
        interval=0.02,
    )


@pytest.mark.parametrize(
    ("kills", "records"),
    [
        pytest.param(1, 160, marks=pytest.mark.quick, id="1-kill"),
        pytest.param(5, 800, id="5-kills"),
    ],
)
def test_generator_killed_mid_partition(
    kills: int,
    records: int,
    rig: Rig,
) -> None:
    """Case 1: ``kill -9`` a generator in the middle of a partition; a new one starts."""
    group, api = rig.services(generators=2)
    rig.emulator.configure(latency_ms=40)
    started = time.monotonic()
    job = submit(api, rig.seeds, records, "5")
    step = max(10, records // (kills + 3))
    done = 0
    for kill in range(kills):
        wait_billed(rig.stack, job["id"], step * (kill + 1), timeout=120)
        victim = busy_generator(group)
        victim.kill(signal.SIGKILL)
        done += 1
        victim.start()  # a new process; the job goes on meanwhile
    final = rig.final(job)
    counters = rig.count(f"generator kill -9 x{done}", job, started)
    assert final["status"] == "COMPLETED", final
    counters.assert_zero()
    assert counters.records == records


FLUSH_SECONDS = 0.5
FLUSH_CONCURRENCY = 8
FLUSH_LATENCY_MS = 100


def test_generator_killed_loses_only_its_last_flush_of_records(rig: Rig) -> None:
    """Parts close by time as well as size: a killed generator wastes seconds, not a partition.

    One partition of 400 records with a part size of 400, so parts close only
    because records waited ``PART_FLUSH_SECONDS`` (0.5 s). At 8 calls of 100 ms
    at once (~80 records/s) the generator is killed after 200 billed calls.
    The records it had not written are paid for and made again: at most those
    that finished in its last ~0.5 s plus the calls in flight, while parts
    closed by size alone would lose all 200.
    """
    group, api = rig.services(
        generators=1,
        overrides={
            "scheduler": {"PALETTE_SCHEDULER_PARTITION_SIZE": "400"},
            "generator": {
                "PALETTE_GENERATOR_PART_SIZE": "400",
                "PALETTE_GENERATOR_PART_FLUSH_SECONDS": str(FLUSH_SECONDS),
                "PALETTE_GENERATOR_CONCURRENCY": str(FLUSH_CONCURRENCY),
            },
        },
    )
    rig.emulator.configure(latency_ms=FLUSH_LATENCY_MS)
    started = time.monotonic()
    job = submit(api, rig.seeds, 400, "5")
    wait_billed(rig.stack, job["id"], 200, timeout=120)
    victim = group.generators[0]
    victim.kill(signal.SIGKILL)
    victim.start()
    final = rig.final(job)
    counters = rig.count("generator kill -9, parts closed by time", job, started)
    assert final["status"] == "COMPLETED", final
    counters.assert_zero()
    assert counters.records == 400
    wasted = counters.billed_calls - counters.records
    most = FLUSH_CONCURRENCY + (FLUSH_SECONDS + 0.3) * FLUSH_CONCURRENCY * 1000 / FLUSH_LATENCY_MS
    assert wasted <= most, f"{wasted} paid records were made again (at most {most:.0f})"


@pytest.mark.parametrize(
    "kills",
    [pytest.param(1, marks=pytest.mark.quick, id="1-kill"), pytest.param(5, id="5-kills")],
)
def test_accounting_killed_between_write_and_ack(
    kills: int,
    rig: Rig,
) -> None:
    """Case 2: accounting dies right after a database write, before its acknowledgement.

    The failpoint ``accounting.after_write`` kills it (SIGKILL, from inside, at
    that exact place) with some probability per write; each time a new process
    starts, until it has died ``kills`` times, then one without the failpoint.
    """
    armed = {"PALETTE_FAILPOINTS": "accounting.after_write=kill:0.08"}
    group, api = rig.services(generators=2, overrides={"accounting": armed})
    started = time.monotonic()
    jobs = [submit(api, rig.seeds, 240, "5")]
    deaths = 0

    def died_enough() -> bool:
        nonlocal deaths
        if group.accounting.wait(0.1) is not None:
            assert group.accounting.process.returncode == -signal.SIGKILL
            deaths += 1
            if deaths == kills:
                assert group.accounting.process.env is not None
                group.accounting.process.env.pop("PALETTE_FAILPOINTS")
            group.accounting.start()  # it may die again before it is ready: that counts
        latest = rig.mongo["jobs"].find_one({"_id": jobs[-1]["id"]})
        if deaths < kills and latest is not None and latest["status"] in FINAL:
            # The job ended before enough crashes: another one, the failpoint still armed.
            jobs.append(submit(api, rig.seeds, 240, "5"))
        return deaths >= kills

    wait_until(
        died_enough,
        what=lambda: f"accounting to die {kills} times (it died {deaths})",
        timeout=FAULT_CASE_TIMEOUT,
        interval=0,
    )
    assert deaths == kills, f"accounting died {deaths} times, wanted {kills}"
    group.accounting.wait_ready()
    for job in jobs:
        final = rig.final(job)
        counters = rig.count(f"accounting kill -9 after write x{deaths}", job, started)
        assert final["status"] == "COMPLETED", final
        counters.assert_zero()


@pytest.mark.parametrize(
    ("how", "restarts"),
    [
        pytest.param(signal.SIGTERM, 1, id="sigterm"),
        pytest.param(signal.SIGKILL, 3, id="kill-9-x3"),
    ],
)
def test_scheduler_restarted_resumes_every_job(
    how: int,
    restarts: int,
    rig: Rig,
) -> None:
    """Case 5: the scheduler restarts mid-job; it resumes both running jobs from the database.

    No partition is generated twice: the emulator billed exactly one call per
    record (one step, no model errors in this case).
    """
    group, api = rig.services(generators=2)
    started = time.monotonic()
    jobs = [submit(api, rig.seeds, 200, "5"), submit(api, rig.seeds, 200, "5")]
    for restart in range(restarts):
        wait_billed(rig.stack, jobs[0]["id"], 40 * (restart + 1), timeout=120)
        group.scheduler.restart(sig=how)
    for job in jobs:
        final = rig.final(job)
        name = "SIGTERM" if how == signal.SIGTERM else "kill -9"
        counters = rig.count(f"scheduler {name} x{restarts} ({job['id'][:8]})", job, started)
        assert final["status"] == "COMPLETED", final
        counters.assert_zero()
        calls = rig.stack.emulator_control().billing(job_id=job["id"])
        per_record = Counter(call["request_metadata"]["record"] for call in calls)
        twice = {record: n for record, n in per_record.items() if n > 1}
        assert not twice, f"records generated more than once: {twice}"
        assert billed_count(rig.stack, job["id"]) == 200


def test_a_scheduler_killed_between_asking_for_the_export_and_sending_it_exports_after_restart(
    rig: Rig,
) -> None:
    """Case 5b: the failpoint kills the scheduler after the export's move to PENDING, before
    its ``ExportJob`` is published; the restarted scheduler asks for it again and the job
    completes with every record, nothing billed twice."""
    armed = {"PALETTE_FAILPOINTS": "scheduler.before_export_request=kill"}
    group, api = rig.services(generators=1, overrides={"scheduler": armed})
    started = time.monotonic()
    job = submit(api, rig.seeds, 40, "5")
    assert group.scheduler.wait(120) == -signal.SIGKILL
    doc = rig.mongo["jobs"].find_one({"_id": job["id"]})
    assert (doc["status"], doc["export"]["status"]) == ("RUNNING", "PENDING"), doc
    assert group.scheduler.process.env is not None
    group.scheduler.process.env.pop("PALETTE_FAILPOINTS")
    group.scheduler.start()
    final = rig.final(job)
    counters = rig.count("scheduler kill -9 before the export request", job, started)
    assert final["status"] == "COMPLETED", final
    counters.assert_zero()
    assert billed_count(rig.stack, job["id"]) == 40


def test_an_export_request_whose_publish_failed_is_sent_again(rig: Rig) -> None:
    """Case 5c: the failpoint makes the scheduler's ``ExportJob`` publish raise after the
    export's move to PENDING (as a publish with the broker away too long does); the handler
    fails and its redelivery finds the export asked for already. The scheduler's sweep sends
    the command again and the job completes, with no restart."""
    armed = {
        "PALETTE_FAILPOINTS": "scheduler.before_export_request=raise",
        "PALETTE_SCHEDULER_EXPORT_RESEND_SECONDS": "2",
        "PALETTE_SCHEDULER_PAUSE_CHECK_SECONDS": "1",
    }
    group, api = rig.services(generators=1, overrides={"scheduler": armed})
    started = time.monotonic()
    job = submit(api, rig.seeds, 40, "5")
    final = rig.final(job)
    counters = rig.count("scheduler's export publish raised", job, started)
    assert final["status"] == "COMPLETED", final
    counters.assert_zero()
    log = group.scheduler.log_text(since_start=True)
    assert "failpoint scheduler.before_export_request raised" in log
    assert '"export_resent"' in log
    assert group.scheduler.alive()
