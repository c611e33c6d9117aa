"""Webhooks without I/O: event ids, thresholds, where a delivery may go, signing, retry schedule."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from palette.accounting import webhook_policy as policy
from palette.accounting.settings import AccountingSettings
from palette.common.messages import JobStatus
from palette.common.webhooks import (
    BUDGET_THRESHOLDS,
    STATUS_EVENTS,
    RefusedTargetError,
    UnresolvedTargetError,
    WebhookEvent,
    blocked_reason,
    crossed_thresholds,
    event_id,
    parse_target,
    resolve_target,
)
from palette.gateway.controllers.webhooks import new_secret

pytestmark = pytest.mark.unit


def resolver_of(table: dict[str, list[str]]):  # type: ignore[no-untyped-def]
    """A resolver answering from a table (no DNS); a name not in it does not resolve."""

    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError(-2, "Name or service not known")
        return table[host]

    return resolve


class TestEventIds:
    def test_one_id_per_event_whatever_announces_it(self) -> None:
        first = event_id("job-1", WebhookEvent.JOB_COMPLETED)
        assert first == event_id("job-1", WebhookEvent.JOB_COMPLETED)
        assert first.startswith("msg_")

    def test_each_event_type_job_and_threshold_has_its_own_id(self) -> None:
        ids = {
            event_id("job-1", WebhookEvent.JOB_COMPLETED),
            event_id("job-2", WebhookEvent.JOB_COMPLETED),
            event_id("job-1", WebhookEvent.JOB_CANCELLED),
            event_id("job-1", WebhookEvent.JOB_BUDGET_THRESHOLD, 75),
            event_id("job-1", WebhookEvent.JOB_BUDGET_THRESHOLD, 90),
        }
        assert len(ids) == 5

    def test_every_final_status_but_none_other_is_an_event(self) -> None:
        finals = {s for s in JobStatus if s.is_final}
        assert set(STATUS_EVENTS) == finals
        assert WebhookEvent.JOB_BUDGET_THRESHOLD not in STATUS_EVENTS.values()


class TestBudgetThresholds:
    def test_reached_at_exactly_75_and_90_percent(self) -> None:
        assert BUDGET_THRESHOLDS == (75, 90)
        assert crossed_thresholds(749, 1000) == []
        assert crossed_thresholds(750, 1000) == [75]
        assert crossed_thresholds(899, 1000) == [75]
        assert crossed_thresholds(900, 1000) == [75, 90]

    def test_an_announced_threshold_is_not_reached_again(self) -> None:
        assert crossed_thresholds(950, 1000, announced=[75]) == [90]
        assert crossed_thresholds(950, 1000, announced=[75, 90]) == []

    def test_exact_in_picodollars(self) -> None:
        budget = 3 * 10**12 + 1
        # 75 % of an odd number of picodollars is not an integer: reached only above it.
        assert crossed_thresholds(budget * 75 // 100, budget) == []
        assert crossed_thresholds(budget * 75 // 100 + 1, budget) == [75]


class TestBlockedAddresses:
    @pytest.mark.parametrize(
        ("address", "reason"),
        [
            ("127.0.0.1", "loopback"),
            ("127.1.2.3", "loopback"),
            ("::1", "loopback"),
            ("10.1.2.3", "private"),
            ("172.16.0.9", "private"),
            ("192.168.1.1", "private"),
            ("fd12::1", "private"),
            ("169.254.169.254", "cloud metadata"),
            ("fd00:ec2::254", "cloud metadata"),
            ("100.100.100.200", "cloud metadata"),
            ("169.254.1.1", "link-local"),
            ("fe80::1", "link-local"),
            ("224.0.0.1", "multicast"),
            ("ff02::1", "multicast"),
            ("0.0.0.0", "unspecified"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:10.0.0.1", "private"),
            ("100.64.0.1", "not a public address"),
        ],
    )
    def test_refuses_every_address_that_is_not_public(self, address: str, reason: str) -> None:
        assert reason in (blocked_reason(address) or "")

    @pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111"])
    def test_allows_public_addresses(self, address: str) -> None:
        assert blocked_reason(address) is None


ALLOWED = ["localhost"]


class TestTargets:
    @pytest.mark.parametrize(
        ("url", "problem"),
        [
            ("http://hooks.example.com/x", "must use https"),
            ("ftp://hooks.example.com/x", "absolute https URL"),
            ("hooks.example.com/x", "absolute https URL"),
            ("https:///x", "absolute https URL"),
            ("https://user:pw@hooks.example.com/x", "user name or password"),
            ("https://hooks.example.com:99999/x", "not a URL"),
            ("https://hooks.example.com/a b", "spaces"),
            ("https://hooks.example.com/" + "a" * 2100, "longer than"),
        ],
    )
    def test_refuses_urls_that_are_not_https_or_malformed(self, url: str, problem: str) -> None:
        with pytest.raises(RefusedTargetError, match=problem):
            parse_target(url, ALLOWED)

    async def test_checks_every_address_the_host_resolves_to(self) -> None:
        resolve = resolver_of({"hooks.example.com": ["93.184.216.34", "10.0.0.7"]})
        with pytest.raises(RefusedTargetError, match=r"resolves to 10\.0\.0\.7, a private"):
            await resolve_target("https://hooks.example.com/x", ALLOWED, resolver=resolve)

    @pytest.mark.parametrize(
        ("url", "reason"),
        [
            ("https://127.0.0.1/x", "127.0.0.1 is a loopback address"),
            ("https://10.2.3.4/x", "10.2.3.4 is a private address"),
            ("https://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
            ("https://[::1]:8443/x", "::1 is a loopback address"),
        ],
    )
    async def test_refuses_literal_addresses_that_are_not_public(
        self, url: str, reason: str
    ) -> None:
        with pytest.raises(RefusedTargetError, match=re.escape(reason)):
            await resolve_target(url, ALLOWED, resolver=resolver_of({}))

    async def test_a_name_resolving_to_loopback_is_refused_without_the_allow_list(self) -> None:
        resolve = resolver_of({"localhost": ["127.0.0.1"]})
        with pytest.raises(RefusedTargetError, match=r"resolves to 127\.0\.0\.1, a loopback"):
            await resolve_target("https://localhost:9/x", [], resolver=resolve)

    async def test_an_allow_listed_host_skips_the_checks_and_may_use_http(self) -> None:
        target = await resolve_target(
            "http://LocalHost:8080/hook", ALLOWED, resolver=resolver_of({})
        )
        assert target.allow_listed
        assert (target.scheme, target.host, target.port) == ("http", "localhost", 8080)

    async def test_a_public_target_keeps_the_addresses_checked(self) -> None:
        resolve = resolver_of({"hooks.example.com": ["93.184.216.34", "2606:4700::1111"]})
        target = await resolve_target("https://hooks.example.com/x", ALLOWED, resolver=resolve)
        assert target.addresses == ("93.184.216.34", "2606:4700::1111")
        assert target.port == 443
        assert not target.allow_listed

    async def test_a_host_that_does_not_resolve_says_so(self) -> None:
        with pytest.raises(UnresolvedTargetError, match=r"nowhere\.example does not resolve"):
            await resolve_target("https://nowhere.example/x", ALLOWED, resolver=resolver_of({}))


class TestSigning:
    def test_a_standard_webhooks_library_verifies_the_headers(self) -> None:
        secret = new_secret()
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
        body = policy.body("job.completed", datetime.now(UTC), {"job_id": "j"}).encode()
        headers = policy.signed_headers(secret, "msg_" + "0" * 32, body, datetime.now(UTC))
        assert Webhook(secret).verify(body, headers)["data"] == {"job_id": "j"}
        with pytest.raises(WebhookVerificationError):
            Webhook(new_secret()).verify(body, headers)
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(body + b" ", headers)


class TestRetrySchedule:
    def test_waits_double_within_jitter_of_half_the_wait(self) -> None:
        for attempt, base in [(1, 5.0), (2, 10.0), (3, 20.0), (4, 40.0)]:
            assert policy.retry_delay(attempt, 5.0, 3600.0, lambda: 0.0) == base / 2
            assert policy.retry_delay(attempt, 5.0, 3600.0, lambda: 1.0) == base

    def test_waits_at_most_the_maximum(self) -> None:
        assert policy.retry_delay(40, 5.0, 3600.0, lambda: 1.0) == 3600.0
        assert policy.retry_delay(10_000, 5.0, 3600.0, lambda: 1.0) == 3600.0

    def test_gives_up_once_past_the_bound(self) -> None:
        now = datetime(2026, 1, 1, tzinfo=UTC)
        bound = now + timedelta(seconds=30)
        assert policy.next_attempt(1, now, bound, 5.0, 3600.0, lambda: 1.0) == now + timedelta(
            seconds=5
        )
        assert policy.next_attempt(4, now, bound, 5.0, 3600.0, lambda: 1.0) is None

    def test_a_delivery_is_due_now_and_bounded(self) -> None:
        now = datetime(2026, 1, 1, tzinfo=UTC)
        webhook = {"_id": "wh_" + "1" * 32, "owner": "alice"}
        event = "msg_" + "2" * 32
        doc = policy.delivery(
            webhook, event, "job.failed", "{}", job_id="j", now=now, retry_for_seconds=60
        )
        assert doc["_id"] == f"{webhook['_id']}:{event}"
        assert doc["status"] == policy.PENDING
        assert doc["next_attempt_at"] == now
        assert doc["give_up_at"] == now + timedelta(seconds=60)


class TestSenderSettings:
    def test_a_claim_shorter_than_an_attempt_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="webhook_claim_seconds must be more than"):
            AccountingSettings(webhook_claim_seconds=5, webhook_timeout_seconds=10)

    def test_a_retention_shorter_than_the_retries_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="webhook_delivery_retention_days must be"):
            AccountingSettings(webhook_delivery_retention_days=1, webhook_retry_for_seconds=90000)
