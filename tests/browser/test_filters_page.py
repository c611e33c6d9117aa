"""The page's seed sampling choice and a filtered job's rejected records, in headless Chromium."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from palette.devstack.client import GatewayClient
from palette.gateway.bearer_tokens import mint
from tests.browser.conftest import NewPage, Shot, sign_in
from tests.browser.test_page import _secret, downloaded_lines, seed_file
from tests.integration.jobs import TWO_STEPS

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


def rejecting_job(user: str, gateway_url: str, tmp_path: Path, **fields: Any) -> dict[str, Any]:
    """A finished job of ``user`` whose ``keep_if`` is never true (nothing kept)."""
    with closing(GatewayClient(gateway_url, mint(user, _secret()))) as api:
        template = api.create_template(TWO_STEPS)
        upload = api.upload_seeds(seed_file(tmp_path, 6))
        job = api.submit_job(
            template_id=template["id"],
            seed_key=upload["key"],
            budget_usd="1",
            output_format="jsonl",
            keep_if="steps.question.output | length < 0",
            **fields,
        )
        return api.wait(job["id"], timeout=90)


def test_a_shuffled_job_from_the_form_draws_every_seed_once_per_pass(
    new_page: NewPage, ui_url: str, gateway_url: str, tmp_path: Path, shot: Shot
) -> None:
    page = new_page()
    user = sign_in(page, ui_url)
    with closing(GatewayClient(gateway_url, mint(user, _secret()))) as api:
        template = api.create_template(TWO_STEPS)
    page.goto(f"{ui_url}/jobs/new")
    page.locator("select[name=template]").select_option(template["id"])
    page.get_by_label("Seed file (JSON array, JSONL or CSV)").set_input_files(
        str(seed_file(tmp_path, 6))
    )
    expect(page.get_by_test_id("seed-status")).to_contain_text("Uploaded")
    page.get_by_role("spinbutton", name="Records").fill("12")
    page.locator("select[name=format]").select_option("jsonl")
    page.locator("select[name=seed-sampling]").select_option("stratify")
    expect(page.get_by_label("Field to balance")).to_be_visible()
    page.locator("select[name=seed-sampling]").select_option("shuffle")
    expect(page.get_by_label("Field to balance")).to_have_count(0)
    expect(page.get_by_test_id("estimate-worst")).to_contain_text("$")
    shot(page, "new-job-seed-sampling")
    page.get_by_role("button", name="Launch job").click()
    expect(page.get_by_test_id("job-page")).to_have_attribute(
        "data-status", "COMPLETED", timeout=90_000
    )
    rows = downloaded_lines(page, "download-jsonl")
    seeds = [row["seed_index"] for row in sorted(rows, key=lambda r: r["index"])]
    assert sorted(seeds[:6]) == sorted(seeds[6:]) == list(range(6))


def test_a_filtered_jobs_rejected_records_are_counted_and_downloaded(
    new_page: NewPage, ui_url: str, gateway_url: str, tmp_path: Path, shot: Shot
) -> None:
    page = new_page()
    job = rejecting_job(sign_in(page, ui_url), gateway_url, tmp_path, num_records=10)
    page.goto(f"{ui_url}/jobs/{job['id']}")
    expect(page.get_by_test_id("records-rejected")).to_contain_text("10")
    expect(page.get_by_test_id("records-rejected")).to_contain_text("keep_if 10")
    expect(page.get_by_test_id("kept")).to_contain_text("10 / 0")
    shot(page, "job-rejected-records")
    rejected = downloaded_lines(page, "download-rejected")
    assert sorted(row["index"] for row in rejected) == list(range(10))
    assert {row["rejected_reason"] for row in rejected} == {"keep_if"}
    expect(page.get_by_test_id("job-note")).to_contain_text("Rejected records download")


def test_a_kept_target_job_stopped_short_by_max_generated_says_so(
    new_page: NewPage, ui_url: str, gateway_url: str, tmp_path: Path, shot: Shot
) -> None:
    page = new_page()
    user = sign_in(page, ui_url)
    job = rejecting_job(user, gateway_url, tmp_path, num_records=3, target="kept", max_generated=4)
    assert (job["status"], job["short_of_target"]) == ("COMPLETED", True), job
    page.goto(f"{ui_url}/jobs/{job['id']}")
    notice = page.get_by_test_id("short-of-target")
    expect(notice).to_contain_text("Short of target: 0 of 3 records kept.")
    expect(notice).to_contain_text("max_generated (4)")
    shot(page, "job-short-of-target")
