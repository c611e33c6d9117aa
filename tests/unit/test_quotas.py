"""Bedrock runtime quotas: the shipped table and the emulator's bucket arithmetic (no I/O)."""

from __future__ import annotations

import pytest

from palette.common.pricing import PricingTable
from palette.common.quotas import MINUTES_PER_DAY, QuotaTable
from palette.devstack.quota_buckets import QuotaBuckets, QuotaLimits
from palette.devstack.quota_usage import QuotaUsage

pytestmark = pytest.mark.unit

REGION = "us-east-1"
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
NOVA = "amazon.nova-micro-v1:0"


def buckets(model: str = NOVA, burndown: int = 1, **limits: float) -> QuotaBuckets:
    return QuotaBuckets({model: QuotaLimits.model_validate(limits)}, lambda _m: burndown)


class TestQuotaTable:
    def test_every_served_model_has_quotas_with_source_and_date(self) -> None:
        table = QuotaTable.load()
        for model in PricingTable.load().models:
            entry = table.quota(model, REGION)
            if entry is None:
                continue  # a profile without a quota of its own here
            assert entry.tpm > 0
            assert entry.source
            assert entry.as_of
        assert set(PricingTable.load().models) >= set(table.models(REGION))

    def test_claude_4_output_burns_five_tokens_and_profiles_follow_their_base(self) -> None:
        table = QuotaTable.load()
        assert table.output_burndown(HAIKU, REGION) == 5
        assert table.output_burndown("us." + HAIKU, REGION) == 5  # no entry: the base's
        assert table.output_burndown(NOVA, REGION) == 1
        assert table.output_burndown("acme.unknown", REGION) == 1

    def test_profile_has_a_quota_of_its_own(self) -> None:
        table = QuotaTable.load()
        assert table.quota("global." + HAIKU, REGION) is not table.quota(HAIKU, REGION)
        assert table.quota("us." + HAIKU, REGION) is None

    def test_daily_quota_defaults_to_tpm_times_1440(self) -> None:
        entry = QuotaTable.load().quota(NOVA, REGION)
        assert entry is not None
        assert entry.tokens_per_day == entry.tpm * MINUTES_PER_DAY

    def test_override_file_replaces_the_table_and_is_validated(self, tmp_path) -> None:
        path = tmp_path / "quotas.json"
        path.write_text(
            '{"regions": {"eu-west-1": {"x.model": {"tpm": 600, "rpm": 6, "tpd": 1000,'
            ' "output_burndown": 3, "source": "test", "as_of": "2026-01-01"}}}}'
        )
        table = QuotaTable.load(path)
        assert table.regions == ["eu-west-1"]
        entry = table.quota("x.model", "eu-west-1")
        assert entry is not None
        assert (entry.rpm, entry.tpm, entry.tokens_per_day, entry.output_burndown) == (
            6,
            600,
            1000,
            3,
        )
        path.write_text('{"regions": {"r": {"x": {"tpm": -1, "source": "t", "as_of": "d"}}}}')
        with pytest.raises(ValueError, match="tpm"):
            QuotaTable.load(path)


class TestRequestsPerMinute:
    def test_a_burst_beyond_rpm_is_throttled_and_takes_nothing(self) -> None:
        quota = buckets(rpm=3)
        assert [quota.admit(NOVA, 10, now=0.0) for _ in range(3)] == [None] * 3
        throttle = quota.admit(NOVA, 10, now=0.0)
        assert throttle is not None
        assert (throttle.reason, throttle.tokens) == ("rpm", 10)

    def test_refills_continuously_at_rpm_over_sixty_seconds(self) -> None:
        quota = buckets(rpm=60)  # one a second
        for _ in range(60):
            assert quota.admit(NOVA, 1, now=0.0) is None
        assert quota.admit(NOVA, 1, now=0.5) is not None
        assert quota.admit(NOVA, 1, now=1.0) is None
        assert quota.admit(NOVA, 1, now=1.0) is not None

    def test_a_client_pacing_at_the_quota_is_never_throttled(self) -> None:
        quota = buckets(rpm=7, tpm=700)
        calls = [quota.admit(NOVA, 100, now=i * 60 / 7) for i in range(500)]
        assert calls == [None] * 500

    def test_a_model_without_limits_is_not_counted(self) -> None:
        quota = buckets(rpm=1)
        assert all(quota.admit(HAIKU, 10**9, now=0.0) is None for _ in range(100))
        assert not quota.enforced(HAIKU)


class TestTokensPerMinute:
    def test_reserves_input_plus_max_tokens_at_the_start(self) -> None:
        quota = buckets(tpm=1000)
        assert quota.admit(NOVA, 600, now=0.0) is None  # e.g. 100 input + maxTokens 500
        throttle = quota.admit(NOVA, 600, now=0.0)
        assert throttle is not None
        assert (throttle.reason, throttle.tokens) == ("tpm", 600)
        assert quota.admit(NOVA, 400, now=0.0) is None

    def test_the_end_corrects_the_reservation_to_what_was_used(self) -> None:
        quota = buckets(tpm=1000)
        assert quota.admit(NOVA, 600, now=0.0) is None
        assert quota.settle(NOVA, 600, input_tokens=100, output_tokens=200, now=0.0) == 300
        assert quota.status(0.0)[NOVA]["levels"] == {"tpm": 700, "daily": 1000 * 1440 - 300}
        assert quota.admit(NOVA, 700, now=0.0) is None

    def test_output_burns_at_the_models_burndown_and_may_overdraw(self) -> None:
        quota = buckets(tpm=1000, burndown=5)
        assert quota.admit(NOVA, 300, now=0.0) is None  # 100 input + maxTokens 200
        assert quota.settle(NOVA, 300, input_tokens=100, output_tokens=200, now=0.0) == 1100
        levels = quota.status(0.0)[NOVA]["levels"]
        assert isinstance(levels, dict)
        assert levels["tpm"] == pytest.approx(-100)
        # 100 below zero, refilled at 1000/60 per second: a 1-token call fits after 6.6 s.
        assert quota.admit(NOVA, 1, now=6.0) is not None
        assert quota.admit(NOVA, 1, now=6.7) is None

    def test_limits_may_set_their_own_burndown(self) -> None:
        quota = buckets(tpm=1000, output_burndown=3, burndown=5)
        assert quota.output_burndown(NOVA) == 3

    def test_an_unbilled_call_gives_its_whole_reservation_back(self) -> None:
        quota = buckets(tpm=1000)
        assert quota.admit(NOVA, 900, now=0.0) is None
        quota.release(NOVA, 900, now=0.0)
        assert quota.admit(NOVA, 1000, now=0.0) is None

    def test_a_request_larger_than_the_quota_is_always_throttled(self) -> None:
        quota = buckets(tpm=1000)
        assert quota.admit(NOVA, 1001, now=3600.0) is not None

    def test_a_zero_quota_throttles_everything(self) -> None:
        quota = buckets(tpm=0)
        assert quota.admit(NOVA, 1, now=100.0) is not None


class TestDailyQuota:
    def test_defaults_to_tpm_times_1440(self) -> None:
        quota = buckets(tpm=100)
        assert QuotaLimits(tpm=100).capacities()["daily"] == 144_000
        levels = quota.status(0.0)[NOVA]["levels"]
        assert isinstance(levels, dict)
        assert levels["daily"] == 144_000

    def test_binds_when_set_below_a_day_of_tpm(self) -> None:
        quota = buckets(tpm=1000, tpd=1500)
        assert quota.admit(NOVA, 1000, now=0.0) is None
        assert quota.admit(NOVA, 1000, now=60.0) is not None  # the minute refilled, the day not
        throttle = quota.admit(NOVA, 1000, now=60.0)
        assert throttle is not None
        assert throttle.reason == "daily"
        assert quota.admit(NOVA, 500, now=60.0) is None


class TestChangingLimits:
    def test_halving_caps_the_level_and_restoring_adds_the_headroom(self) -> None:
        quota = buckets(tpm=1000)
        assert quota.admit(NOVA, 400, now=0.0) is None  # 600 left
        quota.configure({NOVA: QuotaLimits(tpm=500)}, now=0.0)
        assert quota.level(NOVA, now=0.0) == 500  # capped, nothing owed
        assert quota.admit(NOVA, 501, now=0.0) is not None
        quota.configure({NOVA: QuotaLimits(tpm=1000)}, now=0.0)
        assert quota.level(NOVA, now=0.0) == 1000  # 500 more of headroom at once
        assert quota.admit(NOVA, 1000, now=0.0) is None

    def test_lowering_a_drained_quota_applies_the_new_rate_at_once(self) -> None:
        quota = buckets(tpm=600)
        assert quota.admit(NOVA, 600, now=0.0) is None  # drained
        quota.configure({NOVA: QuotaLimits(tpm=300)}, now=0.0)
        assert quota.level(NOVA, now=0.0) == 0  # no debt of the old quota's minute
        assert quota.admit(NOVA, 50, now=10.0) is None  # 300/60 a second refilled for 10 s
        assert quota.admit(NOVA, 1, now=10.0) is not None

    def test_draining_empties_every_bucket_and_keeps_a_debt(self) -> None:
        quota = buckets(rpm=10, tpm=1000)
        assert quota.admit(NOVA, 100, now=0.0) is None
        quota.drain(NOVA, now=0.0)
        assert (quota.level(NOVA, now=0.0), quota.level(NOVA, now=0.0, reason="rpm")) == (0, 0)
        assert quota.admit(NOVA, 1, now=0.0) is not None
        assert quota.settle(NOVA, 100, 50, 100, now=0.0) == 150  # 50 more than reserved
        quota.drain(NOVA, now=0.0)
        assert quota.level(NOVA, now=0.0) == -50

    def test_level_is_none_for_a_bucket_not_enforced(self) -> None:
        assert buckets(rpm=5).level(NOVA, now=0.0) is None
        assert buckets(rpm=5).level(NOVA, now=0.0, reason="rpm") == 5

    def test_removing_a_limit_stops_throttling_and_setting_it_again_starts_full(self) -> None:
        quota = buckets(rpm=1)
        assert quota.admit(NOVA, 1, now=0.0) is None
        assert quota.admit(NOVA, 1, now=0.0) is not None
        quota.configure({}, now=0.0)
        assert quota.admit(NOVA, 1, now=0.0) is None
        quota.configure({NOVA: QuotaLimits(rpm=1)}, now=0.0)
        assert quota.admit(NOVA, 1, now=0.0) is None

    def test_a_settlement_after_the_limit_went_away_is_ignored(self) -> None:
        quota = buckets(tpm=1000)
        assert quota.admit(NOVA, 600, now=0.0) is None
        quota.configure({}, now=0.0)
        assert quota.settle(NOVA, 600, 10, 10, now=0.0) == 20


class TestInferenceProfiles:
    def test_a_profile_has_buckets_apart_from_its_base_model(self) -> None:
        quota = QuotaBuckets({NOVA: QuotaLimits(rpm=1), "us." + NOVA: QuotaLimits(rpm=1)})
        assert quota.admit(NOVA, 1, now=0.0) is None
        assert quota.admit(NOVA, 1, now=0.0) is not None
        assert quota.admit("us." + NOVA, 1, now=0.0) is None
        assert quota.admit("eu." + NOVA, 1, now=0.0) is None  # no quota of its own set


class TestQuotaUsage:
    def test_rows_count_admitted_throttled_reserved_used_and_lowest_level(self) -> None:
        usage = QuotaUsage()
        usage.admitted(NOVA, 100, reserved=50, level=950)
        usage.admitted(NOVA, 100, reserved=50, level=900)
        usage.throttled(NOVA, 101, level=-5)
        usage.used(NOVA, 100, 30)  # kept on the second the request was admitted in
        assert usage.rows() == {
            NOVA: [
                {"t": 100, "admitted": 2, "throttled": 0, "reserved": 100, "used": 30,
                 "tpm_level_min": 900},
                {"t": 101, "admitted": 0, "throttled": 1, "reserved": 0, "used": 0,
                 "tpm_level_min": -5},
            ]
        }  # fmt: skip
        assert [row["t"] for row in usage.rows(NOVA, since=101)[NOVA]] == [101]
        assert usage.rows("other") == {}

    def test_old_rows_are_dropped_and_clear_forgets_every_row(self) -> None:
        usage = QuotaUsage(retention_seconds=10)
        usage.admitted(NOVA, 100, reserved=1, level=None)
        usage.admitted(NOVA, 111, reserved=1, level=None)
        usage.used(NOVA, 100, 5)  # its row is gone: ignored
        assert [row["t"] for row in usage.rows()[NOVA]] == [111]
        assert usage.rows()[NOVA][0]["tpm_level_min"] is None
        assert usage.clear() == 1
        assert usage.rows() == {}
