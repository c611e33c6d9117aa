"""The web page at /ui, in headless Chromium, against the real stack, as a user clicks.

Every test signs in with the dev sign-in as a fresh user and saves
screenshots under out/screenshots/. The model is the Bedrock emulator.
"""

from __future__ import annotations

import json
import uuid
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import yaml
from playwright.sync_api import Page, Route, expect

from palette.devstack.client import GatewayClient
from palette.devstack.stack import DevStack
from palette.gateway.bearer_tokens import mint
from tests.browser.conftest import PHONE, NewPage, Shot, sign_in
from tests.integration.jobs import HAIKU, MICRO, TWO_STEPS, model_latency

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

PRODUCTS = ["a password manager", "a rice cooker", "a bike lock"]


def seed_file(folder: Path, records: int) -> Path:
    """A JSONL seed file of ``records`` records with the fields TWO_STEPS needs."""
    path = folder / "seeds.jsonl"
    lines = [
        json.dumps({"product": PRODUCTS[i % 3], "persona": {"role": f"role {i}"}})
        for i in range(records)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def editor_text(page: Page, text: str) -> None:
    """Replace the template editor's text, as a user selecting all and pasting would."""
    content = page.locator(".cm-content")
    content.click()
    page.keyboard.press("Control+a")
    page.keyboard.insert_text(text)


def launch_from_form(
    page: Page, ui_url: str, seeds: Path, template_id: str, records: int, budget: str
) -> str:
    """Fill the create-job form, wait for its cost estimate, launch; the job's id."""
    page.goto(f"{ui_url}/jobs/new")
    page.locator("select[name=template]").select_option(template_id)
    page.get_by_label("Seed file (JSON array, JSONL or CSV)").set_input_files(str(seeds))
    expect(page.get_by_test_id("seed-status")).to_contain_text("Uploaded")
    page.get_by_role("spinbutton", name="Records").fill(str(records))
    page.get_by_label("Budget (USD)").fill(budget)
    page.locator("select[name=format]").select_option("jsonl")
    expect(page.get_by_test_id("estimate-worst")).to_contain_text("$")
    page.get_by_role("button", name="Launch job").click()
    expect(page.get_by_test_id("job-page")).to_be_visible()
    return page.url.rsplit("/", 1)[-1]


def api_template(gateway_url: str, user: str) -> dict[str, Any]:
    """TWO_STEPS created through the API as ``user``."""
    with closing(GatewayClient(gateway_url, mint(user, _secret()))) as api:
        return api.create_template(TWO_STEPS)


def _secret() -> str:
    from palette.gateway.settings import GatewaySettings

    return GatewaySettings().jwt_secret.get_secret_value()


def downloaded_lines(page: Page, button: str) -> list[dict[str, Any]]:
    """Click a download button; the JSONL rows of the file the browser saved."""
    with page.expect_download() as info:
        page.get_by_test_id(button).click()
    path = info.value.path()
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


class TestSignIn:
    def test_dev_sign_in_by_keyboard_shows_the_jobs_page_and_signs_out(
        self, new_page: NewPage, ui_url: str, shot: Shot
    ) -> None:
        page = new_page()
        page.goto(f"{ui_url}/")
        expect(page.get_by_role("heading", name="Dev sign-in")).to_be_visible()
        page.keyboard.press("Tab")
        expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
        user = f"ui-{uuid.uuid4().hex[:10]}"
        page.get_by_label("User name").focus()
        page.keyboard.type(user)
        page.keyboard.press("Enter")
        expect(page.get_by_test_id("user-menu")).to_have_text(user)
        expect(page.get_by_test_id("no-jobs")).to_be_visible()
        shot(page, "jobs-empty")
        page.get_by_test_id("user-menu").click()
        page.get_by_role("link", name="Sign out").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


class TestTemplateEditor:
    def test_a_422_problem_shows_at_the_field_it_names(
        self, new_page: NewPage, ui_url: str, shot: Shot
    ) -> None:
        page = new_page()
        sign_in(page, ui_url)
        page.get_by_role("link", name="Templates").click()
        page.get_by_test_id("new-template").click()
        body = {
            "name": "editor test",
            "steps": [
                {"id": "question", "model": MICRO, "prompt": "Ask about {{ product }}."},
                {
                    "id": "answer",
                    "model": "no.such-model-v1",
                    "prompt": "{{ steps.question.output }}",
                },
            ],
        }
        editor_text(page, json.dumps(body, indent=2))
        page.get_by_test_id("save-template").click()

        problems = page.get_by_test_id("field-problems")
        expect(problems).to_contain_text("steps[1].model")
        # The editor marks the field's value itself, on the line that holds it.
        marked = page.locator(".cm-lintRange-error")
        expect(marked).to_have_text('"no.such-model-v1"')
        expect(page.locator(".cm-gutter-lint .cm-lint-marker-error")).to_have_count(1)
        marked.hover()
        expect(page.locator(".cm-tooltip-lint")).to_contain_text("has no price")
        shot(page, "template-editor-problem")

        # Fixed, it saves; the same field is clean.
        body["steps"][1]["model"] = HAIKU
        editor_text(page, json.dumps(body, indent=2))
        page.get_by_test_id("save-template").click()
        expect(page.get_by_test_id("template-note")).to_have_text("Saved version 1.")
        expect(page.locator(".cm-lintRange-error")).to_have_count(0)
        expect(page.get_by_test_id("versions-table")).to_contain_text("editor test")


class TestJobs:
    def test_a_job_launched_from_the_form_completes_with_its_bar_and_records(
        self, new_page: NewPage, ui_url: str, gateway_url: str, tmp_path: Path, shot: Shot
    ) -> None:
        page = new_page()
        user = sign_in(page, ui_url)
        template = api_template(gateway_url, user)
        seeds = seed_file(tmp_path, 12)
        job_id = launch_from_form(page, ui_url, seeds, template["id"], records=30, budget="1")

        job = page.get_by_test_id("job-page")
        expect(job).to_have_attribute("data-status", "COMPLETED", timeout=90_000)
        expect(page.get_by_test_id("records-done")).to_have_text("30 / 30")
        bar = page.get_by_test_id("budget-bar")
        expect(bar).to_have_attribute("data-level", "ok")
        expect(page.get_by_test_id("budget-text")).to_contain_text("of $1.00 budget spent")
        assert float(bar.get_by_role("meter").get_attribute("aria-valuenow") or 0) > 0
        expect(page.get_by_test_id("cost-by-model")).to_contain_text(MICRO)
        expect(page.get_by_test_id("cost-by-step")).to_contain_text("answer")
        # The dashboard's counts of throttled and retried attempts (none here).
        expect(page.get_by_test_id("throttled")).to_have_text("Throttled calls0")
        expect(page.get_by_test_id("retried")).to_have_text("Retried calls0")
        rows = page.get_by_test_id("record-row")
        expect(rows).to_have_count(10)
        for step in ("question", "answer"):
            cells = page.locator(f'[data-testid="record-row"] td[data-step="{step}"] .cell-text')
            expect(cells).to_have_count(10)
            assert all(text.strip() for text in cells.all_inner_texts())
        shot(page, "job-completed")

        rows_saved = downloaded_lines(page, "download-jsonl")
        assert len(rows_saved) == 30
        assert {row["complete"] for row in rows_saved} == {True}
        expect(page.get_by_test_id("job-note")).to_contain_text("Full jsonl download")

        page.get_by_role("link", name="Jobs", exact=True).click()
        row = page.locator(f'tr[data-job-id="{job_id}"]')
        expect(row.get_by_test_id("status")).to_have_text("Completed")
        shot(page, "jobs-page")

    def test_cancel_a_running_job_after_a_partial_download(
        self,
        new_page: NewPage,
        ui_url: str,
        gateway_url: str,
        devstack: DevStack,
        tmp_path: Path,
        shot: Shot,
    ) -> None:
        page = new_page()
        user = sign_in(page, ui_url)
        template = api_template(gateway_url, user)
        seeds = seed_file(tmp_path, 20)
        with model_latency(devstack, 150):
            job_id = launch_from_form(page, ui_url, seeds, template["id"], records=2000, budget="5")
            job = page.get_by_test_id("job-page")
            expect(job).to_have_attribute("data-status", "RUNNING", timeout=30_000)
            # The viewer fills as parts land.
            expect(page.get_by_test_id("record-row").first).to_be_visible(timeout=30_000)
            expect(page.get_by_test_id("eta")).not_to_have_text("\u2013")
            shot(page, "job-running")

            partial = downloaded_lines(page, "download-jsonl")
            assert 0 < len(partial) < 2000
            expect(page.get_by_test_id("job-note")).to_contain_text("Partial jsonl download")

            # The jobs list shows the running job live; its link leads back.
            page.get_by_role("link", name="Jobs", exact=True).click()
            row = page.locator(f'tr[data-job-id="{job_id}"]')
            expect(row.get_by_test_id("status")).to_have_text("Running")
            shot(page, "jobs-page-running")
            row.get_by_role("link").click()
            expect(job).to_have_attribute("data-status", "RUNNING")

            page.get_by_test_id("cancel").click()
            expect(page.get_by_test_id("job-note")).to_contain_text("Cancel requested")
            expect(job).to_have_attribute("data-status", "CANCELLED", timeout=60_000)
        expect(page.get_by_test_id("delete")).to_be_visible()
        shot(page, "job-cancelled")

        # Deleting a finished job asks first; keeping it changes nothing.
        page.get_by_test_id("delete").click()
        dialog = page.get_by_test_id("confirm-delete")
        expect(dialog).to_be_visible()
        page.get_by_role("button", name="Keep it").click()
        expect(dialog).to_be_hidden()
        page.get_by_test_id("delete").click()
        page.get_by_test_id("confirm-delete-yes").click()
        expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
        expect(page.locator(f'tr[data-job-id="{job_id}"]')).to_have_count(0, timeout=30_000)

    def test_a_late_answer_for_another_template_never_sets_the_chosen_ones_version(
        self, new_page: NewPage, ui_url: str, gateway_url: str, tmp_path: Path
    ) -> None:
        """A template's versions are asked for when it is chosen; the user picks another
        before they arrive. That late answer (two versions) became the chosen template's,
        and its estimate asked for a version 2 it does not have: 404, no estimate (a
        fresh-clone run failed on it, the first template of the list answering late)."""
        page = new_page()
        user = sign_in(page, ui_url)
        with closing(GatewayClient(gateway_url, mint(user, _secret()))) as api:
            two, chosen = (api.create_template(TWO_STEPS) for _ in range(2))
            api.http.put(f"/templates/{two['id']}", json=TWO_STEPS).raise_for_status()
        late = f"**/templates/{two['id']}/versions"
        held: list[Route] = []
        previews: list[str] = []
        page.on("request", lambda r: previews.append(r.url) if "/preview" in r.url else None)

        def hold(route: Route) -> None:  # Playwright wants a function, not a bound builtin
            held.append(route)

        template = page.locator("select[name=template]")
        page.goto(f"{ui_url}/jobs/new")
        template.select_option(chosen["id"])  # whatever the list put first, not `two`
        expect(page.locator("select[name=version] option")).to_have_count(1)
        page.route(late, hold)
        with page.expect_request(late):
            template.select_option(two["id"])
        template.select_option(chosen["id"])
        page.get_by_label("Seed file (JSON array, JSONL or CSV)").set_input_files(
            str(seed_file(tmp_path, 5))
        )
        expect(page.get_by_test_id("seed-status")).to_contain_text("Uploaded")
        expect(page.get_by_test_id("estimate-worst")).to_contain_text("$")
        with page.expect_response(late) as answer:
            held[0].continue_()  # the versions of the template left answer now, late
        answer.value.finished()
        with page.expect_response(lambda r: "/preview" in r.url) as estimated:
            page.get_by_role("spinbutton", name="Records").fill("7")
        assert estimated.value.ok, estimated.value.status
        expect(page.get_by_test_id("estimate-worst")).to_contain_text("$")
        expect(page.locator("select[name=version] option")).to_have_count(1)
        assert previews
        assert all(f"/templates/{chosen['id']}/" in url for url in previews), previews
        assert not [url for url in previews if "version=2" in url], previews
        page.unroute(late)

    def test_a_template_the_form_cannot_read_shows_why(
        self, new_page: NewPage, ui_url: str
    ) -> None:
        """The versions of the template in the address are refused (404): the form says so."""
        page = new_page()
        sign_in(page, ui_url)
        missing = uuid.uuid4().hex
        with page.expect_response(f"**/templates/{missing}/versions") as answer:
            page.goto(f"{ui_url}/jobs/new?template={missing}")
        assert answer.value.status == 404
        expect(page.get_by_role("alert").filter(has_text="404")).to_contain_text(missing)


class TestIsolation:
    def test_a_second_user_sees_none_of_the_first_users_jobs(
        self, new_page: NewPage, ui_url: str, gateway_url: str, tmp_path: Path, shot: Shot
    ) -> None:
        first = f"ui-{uuid.uuid4().hex[:10]}"
        with closing(GatewayClient(gateway_url, mint(first, _secret()))) as api:
            template = api.create_template(TWO_STEPS)
            upload = api.upload_seeds(seed_file(tmp_path, 3))
            job = api.submit_job(
                template_id=template["id"],
                seed_key=upload["key"],
                num_records=3,
                budget_usd="1",
                output_format="jsonl",
            )
        owner = new_page()
        sign_in(owner, ui_url, first)
        expect(owner.locator(f'tr[data-job-id="{job["id"]}"]')).to_be_visible()

        page = new_page(PHONE)
        sign_in(page, ui_url)
        expect(page.get_by_test_id("no-jobs")).to_be_visible()
        expect(page.locator(f'tr[data-job-id="{job["id"]}"]')).to_have_count(0)
        page.goto(f"{ui_url}/jobs/{job['id']}")
        expect(page.get_by_test_id("not-found")).to_contain_text("404")
        expect(page.get_by_test_id("job-page")).to_have_count(0)
        shot(page, "other-users-job-404-phone")


class TestTemplatesAndUsage:
    def test_preview_versions_diff_fork_and_usage(
        self, new_page: NewPage, ui_url: str, gateway_url: str, shot: Shot
    ) -> None:
        page = new_page()
        user = sign_in(page, ui_url)
        template = api_template(gateway_url, user)
        page.goto(f"{ui_url}/templates")
        # Other tests' public templates may share the name: follow this one's link.
        page.get_by_role("link", name=TWO_STEPS["name"]).and_(
            page.locator(f'a[href$="/templates/{template["id"]}"]')
        ).click()
        expect(page.get_by_role("heading", name=TWO_STEPS["name"])).to_be_visible()

        # One record through the model: prompts, outputs and cost.
        seed = {"product": "a kettle", "persona": {"role": "chef"}}
        page.get_by_label("Seed record (JSON)").fill(json.dumps(seed))
        page.get_by_test_id("preview-run").click()
        expect(page.get_by_test_id("preview-cost")).to_contain_text("$")
        expect(page.get_by_test_id("preview-output")).to_have_count(2)
        rendered = "Ask about a kettle as a chef."
        expect(page.get_by_test_id("preview-result")).to_contain_text(rendered)

        # A second version, and the diff of the two.
        page.get_by_label("YAML").check()
        body = json.loads(json.dumps(TWO_STEPS))
        body["steps"][1]["max_tokens"] = 120
        editor_text(page, yaml.safe_dump(body, sort_keys=False))
        page.get_by_test_id("save-template").click()
        expect(page.get_by_test_id("template-note")).to_have_text("Saved version 2.")
        page.get_by_role("button", name="Compare").click()
        diff = page.get_by_test_id("version-diff")
        expect(diff.locator(".del")).to_contain_text("max_tokens: 80")
        expect(diff.locator(".add")).to_contain_text("max_tokens: 120")
        shot(page, "template-versions-diff")

        # A fork is a new template of the user's own.
        page.get_by_test_id("fork").click()
        expect(page.get_by_role("heading", name=f"{TWO_STEPS['name']} (fork)")).to_be_visible()
        expect(page.get_by_text(f"forked from {template['id'][:8]}")).to_be_visible()

        # The preview's spend shows in usage, by model, as a chart and a table.
        page.get_by_role("link", name="Usage").click()
        page.locator("select[name=group_by]").select_option("model")
        table = page.get_by_test_id("usage-table")
        expect(table).to_contain_text(MICRO)
        expect(table).to_contain_text("preview")
        expect(page.get_by_test_id("usage-total")).not_to_have_text("$0.00")
        page.get_by_label("7 days").check()
        expect(table).to_contain_text(HAIKU)
        expect(page.locator(".chart canvas")).to_be_visible()
        shot(page, "usage")
