"""The job page shows each model's quota as the generators share it, and a paused partition.

The services here are a group of their own (tests/integration/quota_services.py): one
generator pacing to a quota table that lists MODEL at the TPM the session's emulator
enforces, and a model unavailable for 4 s pauses its partition.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from palette.devstack.stack import DevStack
from tests.backends import Backend
from tests.browser.conftest import NewPage, Shot, sign_in
from tests.integration.jobs import start
from tests.integration.quota_services import MODEL, TPM, Group, enforced_quota, quota_services

pytestmark = [pytest.mark.browser, pytest.mark.long, pytest.mark.timeout(300)]

TEMPLATE = {
    "name": "quota page",
    "steps": [{"id": "a", "model": MODEL, "prompt": "Note on {{ product }}", "max_tokens": 24}],
}


@pytest.fixture(scope="module")
def quota_group(
    devstack: DevStack,
    test_backend: Backend,
    jwt_secret: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Group]:
    """Asked for before the browser: its set-up and tear-down run asyncio, which Playwright's
    running loop would refuse."""
    state = tmp_path_factory.mktemp("quota-page")
    with quota_services(devstack, test_backend, jwt_secret, state, 1, "quota-page") as group:
        yield group


@pytest.fixture
def emulator(devstack: DevStack) -> Iterator[Any]:
    with enforced_quota(devstack) as control:
        yield control


class TestQuotaOnThePage:
    def test_the_quota_in_use_then_an_outage_paused_then_the_job_completes(
        self, quota_group: Group, emulator: Any, new_page: NewPage, shot: Shot
    ) -> None:
        _, _, job = start(quota_group.api, 120, TEMPLATE)
        ui = f"{quota_group.group.gateway_url}/ui"
        page = new_page()
        sign_in(page, ui, quota_group.user)
        page.goto(f"{ui}/jobs/{job['id']}")

        # While the job runs, its model's line: the table's quota, shared by one generator.
        line = page.get_by_test_id("quotas").locator(f"tr[data-model='{MODEL}']")
        expect(line).to_contain_text(f"{TPM:,}", timeout=60_000)
        expect(line.locator("td").first).to_have_text("1")
        shot(page, "quota-in-use")

        # The model's quota drops to 0: every call is throttled, and after 4 s the
        # partition pauses; the page says which model and why.
        emulator.set_quota(MODEL, tpm=0)
        paused = page.get_by_test_id("paused")
        expect(paused).to_contain_text(MODEL, timeout=90_000)
        expect(page.get_by_test_id("job-page")).to_have_attribute("data-status", "RUNNING")
        expect(page.get_by_test_id("throttled")).not_to_have_text("Throttled calls0")
        shot(page, "quota-paused")

        # Restored, the job completes; nothing is paused any more and the quota
        # table, of a running job only, is gone.
        emulator.set_quota(MODEL, tpm=TPM)
        expect(page.get_by_test_id("job-page")).to_have_attribute(
            "data-status", "COMPLETED", timeout=180_000
        )
        expect(paused).to_have_count(0)
        expect(page.get_by_test_id("quotas")).to_have_count(0)
        expect(page.get_by_test_id("records-done")).to_have_text("120 / 120")
        # Calls waited for the bucket: seconds in all (a throttled call waits, never fails).
        expect(page.get_by_test_id("quota-wait")).to_have_text(re.compile(r"Waited for quota[1-9]"))
