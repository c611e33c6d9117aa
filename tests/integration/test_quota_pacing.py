"""Quotas for real: the emulator enforces a model's TPM, the generators pace to their shares.

Each group of services here runs on a virtual host and a database of its own, with
a quota table that lists one model at the TPM the emulator enforces on it (the
session's emulator, its quota removed afterwards). Before a job the emulator's
bucket is drained, so any call beyond the quota's refill is throttled.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from palette.devstack.emulator_client import EmulatorControl
from palette.devstack.stack import DevStack
from tests.backends import Backend
from tests.integration.jobs import assert_ledger_matches_billing, start
from tests.integration.quota_services import (
    MODEL,
    TPM,
    Group,
    enforced_quota,
    quota_services,
)
from tests.integration.waiting import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

UNLISTED = "meta.llama3-1-8b-instruct-v1:0"
"""A model the generators' quota table does not list: paced by throttles alone."""
TEMPLATE = {
    "name": "quota",
    "steps": [{"id": "a", "model": MODEL, "prompt": "Note on {{ product }}", "max_tokens": 24}],
}


@pytest.fixture(
    scope="module",
    params=[1, pytest.param(2, marks=pytest.mark.long)],
    ids=["1-generator", "2-generators"],
)
def quota_group(
    request: pytest.FixtureRequest,
    devstack: DevStack,
    test_backend: Backend,
    jwt_secret: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Group]:
    """The four services with ``request.param`` generators pacing to a table listing MODEL."""
    generators = int(request.param)
    state = tmp_path_factory.mktemp(f"quota{generators}")
    with quota_services(
        devstack, test_backend, jwt_secret, state, generators, f"quota{generators}"
    ) as group:
        yield group


@pytest.fixture
def emulator(devstack: DevStack) -> Iterator[EmulatorControl]:
    """The session's emulator enforcing TPM on MODEL and UNLISTED, drained; removed after."""
    with enforced_quota(devstack, (MODEL, UNLISTED)) as control:
        yield control


def job_run(group: Group, records: int, model: str = MODEL) -> dict[str, Any]:
    steps = [{**TEMPLATE["steps"][0], "model": model}]  # type: ignore[index]
    _, _, job = start(group.api, records, {**TEMPLATE, "steps": steps})
    return job


def live_shares(group: Group) -> list[dict[str, Any]]:
    """The generators' live documents of MODEL in ``quota_shares``."""
    now = datetime.now(UTC)
    return list(group.db["quota_shares"].find({"model": MODEL, "expires": {"$gt": now}}))


def assert_no_partition_failed(group: Group, job_id: str) -> None:
    parts = list(group.db["partitions"].find({"job_id": job_id}))
    assert parts
    assert all(p["status"] == "DONE" for p in parts), parts
    assert sum(int(p.get("failures", 0)) for p in parts) == 0, parts


class TestQuotaBinds:
    def test_a_job_whose_tpm_binds_completes_with_few_throttles_and_no_failed_partition(
        self, quota_group: Group, emulator: EmulatorControl, devstack: DevStack
    ) -> None:
        started = time.monotonic()
        job = job_run(quota_group, 60)
        generators = len(quota_group.group.generators)
        # Each generator with calls for the model holds a share; together, once they have
        # seen each other (a sync interval), at most the quota.
        wait_until(
            lambda: (
                len(docs := live_shares(quota_group)) == generators
                and all(doc["share"] is not None for doc in docs)
                and sum(doc["share"] for doc in docs) <= TPM * 0.98 + 1
            ),
            what=f"{generators} generators sharing the quota",
            timeout=120,
        )
        lines = quota_group.api.dashboard(job["id"])["quotas"]
        assert [(q["model"], q["quota_tpm"]) for q in lines] == [(MODEL, TPM)]
        final = quota_group.api.wait(job["id"], timeout=240)
        elapsed = time.monotonic() - started
        stats = emulator.stats()
        assert final["status"] == "COMPLETED", final
        assert_no_partition_failed(quota_group, job["id"])
        doc = assert_ledger_matches_billing(devstack, quota_group.db, job["id"])
        throttled = int(stats.get("quota_tpm", 0))
        print(f"{doc['calls']} calls, {throttled} throttled, {elapsed:.1f} s")
        assert doc["calls"] == 60
        # The quota bound the job: the calls' tokens took about their refill time.
        used = doc["input_tokens"] + doc["output_tokens"]
        assert elapsed >= used / (TPM / 60) * 0.8, (used, elapsed)
        assert throttled <= 0.1 * doc["calls"], stats
        board = quota_group.api.dashboard(job["id"])
        assert board["tokens"]["throttled"] == throttled
        assert board["tokens"]["quota_wait_seconds"] > 0


class TestUnknownQuota:
    def test_a_model_the_table_does_not_list_is_paced_by_its_throttles(
        self, quota_group: Group, emulator: EmulatorControl, devstack: DevStack
    ) -> None:
        job = job_run(quota_group, 60, UNLISTED)
        final = quota_group.api.wait(job["id"], timeout=240)
        stats = emulator.stats()
        assert final["status"] == "COMPLETED", final
        assert_no_partition_failed(quota_group, job["id"])
        doc = assert_ledger_matches_billing(devstack, quota_group.db, job["id"])
        throttled = int(stats.get("quota_tpm", 0))
        print(f"unlisted: {doc['calls']} calls, {throttled} throttled")
        assert doc["calls"] == 60
        # Throttles found the rate without a storm. A quota this small (three calls a
        # second, its bucket drained) costs throttles while it is found: the first throttle
        # before any answer decreases from 0.7 x what the calls asked (not to the least rate,
        # which let random throttles pace a model down to nothing: throttle_share), so it
        # takes two or three seconds of decreases (93-97 throttles for 60 calls in 6 runs,
        # all in those seconds). Two defects made more: that ask set the floor above the
        # quota, 2 throttles a second for the whole job (113-116 in 3 runs); and a test
        # of the first decrease that took nearly every call throttled for "not the rate"
        # undid it, a storm (325 in CI, 1,408 in 1 run of 4 here). A retry that went out
        # at once after each throttle would have made over a thousand (1,093-1,391).
        assert 0 < throttled < 4 * doc["calls"], stats


class TestQuotaOutage:
    def test_a_quota_at_zero_for_seconds_mid_job_is_waited_out(
        self, quota_group: Group, emulator: EmulatorControl, devstack: DevStack
    ) -> None:
        job = job_run(quota_group, 60)
        wait_until(
            lambda: (quota_group.api.job(job["id"])["records_done"] or 0) >= 10,
            what="10 records",
            timeout=120,
        )
        before = int(emulator.stats().get("quota_tpm", 0))
        emulator.set_quota(MODEL, tpm=0)
        # The outage lasts until calls were throttled again and again (a few seconds).
        wait_until(
            lambda: int(emulator.stats().get("quota_tpm", 0)) >= before + 3,
            what="calls throttled at quota 0",
            timeout=60,
        )
        emulator.set_quota(MODEL, tpm=TPM)
        final = quota_group.api.wait(job["id"], timeout=240)
        assert final["status"] == "COMPLETED", final
        assert_no_partition_failed(quota_group, job["id"])
        doc = assert_ledger_matches_billing(devstack, quota_group.db, job["id"])
        assert doc["calls"] == 60
        assert quota_group.api.dashboard(job["id"])["tokens"]["throttled"] >= 2

    def test_a_model_unavailable_for_long_pauses_the_partition_then_the_job_completes(
        self, quota_group: Group, emulator: EmulatorControl, devstack: DevStack
    ) -> None:
        emulator.set_quota(MODEL, tpm=0)
        job = job_run(quota_group, 20)

        def paused() -> dict[str, Any] | None:
            view = quota_group.api.job(job["id"])
            return view if view["partitions_paused"] > 0 else None

        view = wait_until(paused, what="a paused partition", timeout=120)
        assert MODEL in view["paused_reason"]
        assert view["status"] == "RUNNING"
        board = quota_group.api.dashboard(job["id"])
        assert board["progress"]["partitions_paused"] >= 1
        emulator.set_quota(MODEL, tpm=TPM)
        final = quota_group.api.wait(job["id"], timeout=240)
        assert final["status"] == "COMPLETED", final
        assert not quota_group.db["jobs"].find_one({"_id": job["id"]}).get("paused")
        assert_no_partition_failed(quota_group, job["id"])
        assert_ledger_matches_billing(devstack, quota_group.db, job["id"])
