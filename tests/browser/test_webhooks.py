"""The page's Webhooks screen, in headless Chromium, against the real stack and a local receiver.

The session's services allow-list ``localhost`` for webhooks (tests/conftest.py),
so the receiver of tests/integration/webhook_receiver.py on 127.0.0.1 is a
valid endpoint; accounting sends to it as it would to any other.
"""

from __future__ import annotations

import uuid

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, NewPage, Shot, sign_in
from tests.integration.webhook_receiver import Receiver

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]


class TestWebhooksScreen:
    def test_create_test_send_resend_and_delete_a_webhook(
        self, new_page: NewPage, ui_url: str, shot: Shot
    ) -> None:
        page = new_page()
        sign_in(page, ui_url)
        page.get_by_role("link", name="Webhooks").click()
        expect(page.get_by_role("heading", name="Webhooks", exact=True)).to_be_visible()
        expect(page.get_by_test_id("no-webhooks")).to_be_visible()

        with Receiver() as receiver:
            path = f"/hooks/{uuid.uuid4().hex}"
            url_field = page.get_by_role("textbox", name="URL")

            # Not a URL: the API's 422 shows at the url field.
            url_field.fill("not a url")
            page.get_by_test_id("create-webhook").click()
            expect(page.get_by_test_id("url-problem")).to_contain_text("https URL")
            expect(url_field).to_have_attribute("aria-invalid", "true")
            expect(page.get_by_test_id("no-webhooks")).to_be_visible()

            # Every event type is offered, and checked unless unchecked.
            events = page.locator("fieldset.events input[type=checkbox]")
            expect(events).to_have_count(5)
            for event in ("job.completed", "job.budget_threshold"):
                expect(page.get_by_role("checkbox", name=event)).to_be_checked()

            url_field.fill(receiver.url(path))
            page.get_by_label("Description (optional)").fill("browser test")
            page.get_by_test_id("create-webhook").click()

            # The signing secret, shown this once.
            secret_box = page.get_by_test_id("webhook-secret")
            expect(secret_box).to_contain_text("not shown again")
            secret = page.get_by_test_id("secret-value").inner_text().strip()
            assert secret.startswith("whsec_"), secret
            expect(page.get_by_test_id("url-problem")).to_have_count(0)
            row = page.get_by_test_id("webhook-row")
            expect(row).to_have_count(1)
            expect(row).to_contain_text(receiver.url(path))
            expect(row).to_contain_text("browser test")
            shot(page, "webhooks-secret")
            page.get_by_role("button", name="I have stored it").click()
            expect(secret_box).to_have_count(0)
            page.reload()
            expect(page.get_by_test_id("webhook-row")).to_have_count(1)
            assert secret not in page.content()

            # A test event reaches the receiver, signed with that secret, and shows delivered.
            page.get_by_role("link", name=receiver.url(path)).click()
            expect(page.get_by_test_id("no-deliveries")).to_be_visible()
            page.get_by_test_id("send-test").click()
            # The gateway took the request (202) before the receiver is waited for: a refused
            # one fails here with what the page shows, not after the receiver's 60 s.
            expect(page.get_by_test_id("webhook-note")).to_contain_text("on its way")
            (first,) = receiver.wait_for(path, 1, what="the test event")
            assert first.verify(secret)["type"] == "webhook.test"
            delivered = page.locator(f'[data-delivery-id="{first.webhook_id}"]')
            expect(delivered).to_have_attribute("data-status", "delivered")
            expect(delivered.get_by_test_id("delivery-status")).to_have_text("Delivered")
            expect(delivered).to_contain_text("webhook.test")
            expect(delivered.get_by_test_id("attempt")).to_have_count(1)
            expect(delivered.get_by_test_id("attempt-code")).to_contain_text("HTTP 200 in")

            # Re-sent: the same webhook-id arrives again, and a second attempt shows.
            delivered.get_by_test_id("resend").click()
            second = receiver.wait_for(path, 2, what="the re-sent test event")[1]
            assert second.webhook_id == first.webhook_id
            expect(delivered.get_by_test_id("attempt")).to_have_count(2)
            expect(delivered.get_by_test_id("attempt-code").nth(1)).to_contain_text("HTTP 200")
            expect(delivered).to_have_attribute("data-status", "delivered")
            expect(page.get_by_test_id("webhook-note")).to_contain_text("sent again")
            shot(page, "webhooks-page")
            page.set_viewport_size(PHONE)
            expect(delivered).to_be_visible()
            width = page.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"], f"the page is {width}px wide on a phone"
            shot(page, "webhooks-phone")

            # Delete asks first: the keyboard keeps it (Escape), then it goes for good.
            page.get_by_test_id("delete").click()
            dialog = page.get_by_test_id("confirm-delete")
            expect(dialog).to_be_visible()
            expect(dialog.get_by_role("button", name="Keep it")).to_be_focused()
            page.keyboard.press("Escape")
            expect(dialog).to_be_hidden()
            expect(page.get_by_test_id("webhook-page")).to_be_visible()
            page.get_by_test_id("delete").click()
            page.get_by_test_id("confirm-delete-yes").click()
            expect(page.get_by_test_id("no-webhooks")).to_be_visible()
            assert len(receiver.received(path)) == 2
