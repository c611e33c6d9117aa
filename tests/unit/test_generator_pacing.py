"""Quota pacing: fair shares, the AIMD rate and the local token bucket (no I/O)."""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
from collections.abc import Sequence

import pytest

from palette.devstack.quota_buckets import QuotaBuckets, QuotaLimits
from palette.devstack.quota_sim import CallShape, Pacer, SimulatedBedrock
from palette.devstack.quota_sim import SimClock as Clock  # the test moves it by hand
from palette.generator.pacing import (
    AimdParams,
    AimdRate,
    ModelUnavailableError,
    UsageWindow,
    fair_shares,
)
from palette.generator.quota_pacer import ModelPacer

pytestmark = pytest.mark.unit


class TestFairShares:
    def test_generators_that_all_want_more_split_the_quota_equally(self) -> None:
        assert fair_shares(900.0, {"a": None, "b": None, "c": None}) == {
            "a": 300.0,
            "b": 300.0,
            "c": 300.0,
        }

    def test_a_small_demand_is_met_and_the_rest_goes_to_the_others(self) -> None:
        shares = fair_shares(1000.0, {"a": 100.0, "b": None, "c": 600.0})
        assert shares == {"a": 100.0, "b": 450.0, "c": 450.0}

    def test_what_no_demand_takes_is_spread_over_all_and_the_shares_add_up(self) -> None:
        shares = fair_shares(1000.0, {"a": 100.0, "b": 300.0})
        assert shares == {"a": 400.0, "b": 600.0}
        assert sum(fair_shares(777.0, {"a": 5.0, "b": None, "c": 80.0}).values()) == 777.0

    def test_a_lone_generator_has_the_whole_quota(self) -> None:
        assert fair_shares(500.0, {"me": 1.0}) == {"me": 500.0}
        assert fair_shares(500.0, {}) == {}


class TestAimdKnownQuota:
    def test_a_throttle_decreases_once_per_cooldown(self) -> None:
        rate = AimdRate(1000.0, 0.0)
        assert rate.throttled(1.0, used=0.0)
        assert rate.rate == pytest.approx(700.0)
        assert not rate.throttled(1.0, used=0.0)  # the same congestion
        assert rate.rate == pytest.approx(700.0)
        assert not rate.throttled(1.5, used=0.0)  # still: half a second of recovery only
        assert rate.rate == pytest.approx(750.0)
        assert rate.throttled(2.0, used=0.0)
        assert rate.rate == pytest.approx(800.0 * 0.7)

    def test_it_recovers_fast_to_the_ceiling_then_probes_then_reaches_its_cap(self) -> None:
        rate = AimdRate(1000.0, 0.0)
        rate.throttled(0.0, used=0.0)  # ceiling 1000, rate 700
        rate.advance(1.0)
        assert rate.rate == pytest.approx(800.0)  # +10 % of the ceiling a second
        rate.advance(2.0)
        assert rate.rate == pytest.approx(900.0)
        rate.advance(3.0)
        assert rate.rate == pytest.approx(903.0)  # near it: +0.3 % a second
        rate.advance(100.0)
        assert rate.rate == 1000.0  # never above the share
        assert rate.factor == 1.0

    def test_it_never_goes_below_its_floor(self) -> None:
        rate = AimdRate(1000.0, 0.0, AimdParams(floor=0.05, recover=0.0, probe=0.0))
        for k in range(30):
            rate.throttled(float(k) * 2, used=0.0)
        assert rate.rate == pytest.approx(50.0)

    def test_throttles_without_answers_keep_it_trying_about_once_per_cooldown(self) -> None:
        # An outage: the ceiling stays, so between throttles it recovers fast.
        rate = AimdRate(1000.0, 0.0)
        for k in range(30):
            rate.throttled(float(k), used=0.0)
        assert rate.rate == pytest.approx(0.7 * 100 / 0.3, rel=0.01)

    def test_the_ceiling_stays_where_the_first_throttle_after_an_answer_met_it(self) -> None:
        rate = AimdRate(1000.0, 0.0)
        rate.throttled(0.0, used=0.0)
        rate.throttled(2.0, used=0.0)  # no answer in between: an outage, not a lower quota
        assert rate.ceiling == pytest.approx(1000.0)
        rate.succeeded()
        rate.throttled(4.0, used=0.0)
        assert rate.ceiling == pytest.approx(rate.rate / 0.7)

    def test_a_new_share_keeps_the_factor(self) -> None:
        rate = AimdRate(1000.0, 0.0)
        rate.throttled(0.0, used=0.0)
        rate.set_cap(500.0, 0.0)
        assert rate.rate == pytest.approx(350.0)
        assert rate.factor == pytest.approx(0.7)

    def test_a_throttle_decreases_from_what_the_calls_used_when_that_was_less(self) -> None:
        rate = AimdRate(1000.0, 0.0)
        rate.throttled(0.0, used=200.0)
        assert rate.rate == pytest.approx(140.0)


class TestAimdUnknownQuota:
    def test_it_is_unlimited_until_a_throttle_sets_the_rate_from_the_use(self) -> None:
        rate = AimdRate(None, 0.0)
        assert rate.rate is None
        rate.advance(100.0)
        assert rate.rate is None
        rate.throttled(100.0, used=6000.0)
        assert rate.rate == pytest.approx(4200.0)
        assert rate.ceiling == pytest.approx(6000.0)

    def test_it_is_unlimited_again_after_a_minute_without_throttles(self) -> None:
        rate = AimdRate(None, 0.0)
        rate.throttled(0.0, used=6000.0)
        rate.advance(30.0)
        assert rate.rate is not None
        rate.advance(61.0)
        assert rate.rate is None

    def test_with_nothing_known_it_starts_from_its_minimum_and_doubles(self) -> None:
        rate = AimdRate(None, 0.0)
        rate.minimum = 600.0
        rate.throttled(0.0, used=0.0)
        assert rate.rate == 600.0
        assert rate.ceiling is None
        rate.advance(1.0)
        assert rate.rate == pytest.approx(1200.0)


class TestUsageWindow:
    def test_use_per_minute_over_the_last_ten_seconds(self) -> None:
        window = UsageWindow(10)
        for second in range(20):
            window.add(100.0 + second, 50.0)
        assert window.per_minute(119.5) == pytest.approx(50.0 * 60)
        assert window.per_minute(200.0) == 0.0  # all of it older than the window


def pacer(clock: Clock, quota: float | None = 6000.0, **kwargs: object) -> ModelPacer:
    """A pacer of a known quota of 6,000 tokens a minute (100 a second), all its own."""
    p = ModelPacer("m", quota, clock=clock, **kwargs)  # type: ignore[arg-type]
    if quota is not None:
        p.set_share(quota)
    return p


class TestModelPacer:
    def test_a_call_takes_its_reservation_as_the_bucket_refills(self) -> None:
        clock = Clock()
        p = pacer(clock)
        assert p.try_take(50) is None  # a new bucket starts empty
        clock.now += 0.5
        assert p.try_take(50) is not None
        assert p.try_take(1) is None

    def test_the_end_corrects_the_reservation_with_the_burndown(self) -> None:
        clock = Clock()
        p = pacer(clock, burndown=5)
        clock.now += 1.0
        ticket = p.try_take(100)
        assert ticket is not None
        # 10 in + 4 out x 5 = 30 used of the 100 reserved: 70 come back.
        p.settle(ticket, 10, 4)
        assert p.try_take(70) is not None
        assert p.try_take(1) is None
        assert p.used_per_minute(clock.now) == pytest.approx(30 * 60)

    def test_a_refused_call_gives_its_reservation_back(self) -> None:
        clock = Clock()
        p = pacer(clock)
        clock.now += 1.0
        ticket = p.try_take(100)
        assert ticket is not None
        p.failed(ticket, "ServiceUnavailableException", maybe_billed=False)
        assert p.try_take(100) is not None

    def test_a_call_that_may_have_run_keeps_its_reservation(self) -> None:
        clock = Clock()
        p = pacer(clock)
        clock.now += 1.0
        ticket = p.try_take(100)
        assert ticket is not None
        p.failed(ticket, "", maybe_billed=True)
        assert p.try_take(1) is None

    def test_a_throttle_empties_the_bucket_and_slows_it(self) -> None:
        clock = Clock()
        p = pacer(clock)
        clock.now += 1.0
        ticket = p.try_take(60)
        assert ticket is not None
        p.failed(ticket, "ThrottlingException", maybe_billed=False)
        assert p.throttles == 1
        assert p.rate == pytest.approx(6000.0 * 0.7)
        assert p.try_take(1) is None
        clock.now += 10 / 70  # 70 a second now
        assert p.try_take(10) is not None

    def test_requests_per_minute_bound_the_calls_too(self) -> None:
        clock = Clock()
        p = ModelPacer("m", 6000.0, rpm=60.0, clock=clock)  # one call a second
        p.set_share(6000.0)
        clock.now += 1.0
        assert p.try_take(1) is not None
        assert p.try_take(1) is None  # tokens left, no request left
        clock.now += 1.0
        assert p.try_take(1) is not None

    def test_an_unknown_quota_takes_anything_until_throttled(self) -> None:
        clock = Clock()
        p = pacer(clock, quota=None)
        assert all(p.try_take(10_000) is not None for _ in range(100))
        assert p.rate is None

    def test_a_decrease_that_nearly_every_later_call_meets_is_never_undone(self) -> None:
        """Calls answered, then a throttle: the test of the decrease starts from 1 throttle in
        10, and the rate from what the calls asked (far above the quota). Every call after it
        is throttled: neither answer expects that, a background of 1 in 10 still less than
        a quota, yet it must not be taken for "not the rate": undone, the rate would be
        unlimited again, a storm (1,272 throttles in a second in the integration case)."""
        clock = Clock()
        p = pacer(clock, quota=None)
        for _ in range(9):
            ticket = p.try_take(100)
            assert ticket is not None
            clock.now += 0.01
            p.settle(ticket, 10, 20)
        ticket = p.try_take(100)
        assert ticket is not None
        assert p.throttled(ticket)
        first = p.rate
        assert first is not None
        for _ in range(40):
            clock.now += 0.25
            ticket = p.try_take(100)
            if ticket is not None:
                p.throttled(ticket)
            assert p.rate is not None
        assert p.throttles > 10
        assert p.rate < first / 2

    def test_a_known_quota_waits_for_its_first_share(self) -> None:
        clock = Clock()
        p = ModelPacer("m", 6000.0, clock=clock)
        clock.now += 5.0
        assert p.try_take(1) is None
        p.set_share(3000.0)
        assert p.try_take(1) is not None

    def test_the_model_is_unavailable_after_throttles_without_an_answer(self) -> None:
        clock = Clock()
        p = pacer(clock)
        clock.now += 1.0
        ticket = p.try_take(10)
        assert ticket is not None
        p.throttled(ticket)
        clock.now += 30.0
        assert p.unavailable_for() == pytest.approx(30.0)
        ticket = p.try_take(10)
        assert ticket is not None
        p.settle(ticket, 5, 5)
        assert p.unavailable_for() == 0.0

    def test_demand_is_everything_while_calls_wait_else_the_recent_use(self) -> None:
        clock = Clock()
        p = pacer(clock)
        clock.now += 1.0
        ticket = p.try_take(100)
        assert ticket is not None
        p.settle(ticket, 50, 10)
        assert p.demand(clock.now, 1.0) == pytest.approx(60 * 60 * 1.25)

    def test_a_throttled_call_keeps_its_reservation_so_its_retry_waits(self) -> None:
        clock = Clock()
        p = pacer(clock)
        clock.now += 1.0
        first = p.try_take(50)
        assert first is not None
        p.throttled(first)  # decreases: the bucket is emptied
        clock.now += 0.9  # 70 a second now
        second = p.try_take(60)
        assert second is not None
        p.throttled(second)  # within the cooldown: no decrease, the 60 stay taken
        assert p.rate is not None
        assert p.rate > 6000 * 0.7  # not decreased again (it recovered a little meanwhile)
        assert p.try_take(60) is None  # its retry waits for the bucket

    def test_the_bucket_holds_two_of_its_largest_calls_so_no_correction_is_lost(self) -> None:
        clock = Clock()
        p = pacer(clock, quota=600.0)  # ten tokens a second: a call of 40 is four seconds
        clock.now += 4.0
        ticket = p.try_take(40)
        assert ticket is not None
        clock.now += 4.0
        p.settle(ticket, 5, 5)  # 30 of the 40 come back on top of the 40 refilled
        assert p.try_take(70) is not None  # a bucket of one second's rate would hold 10


SHAPE = CallShape(ask=60 + 64, reserve=79, input_tokens=15, output_tokens=40)
"""Calls of 15 tokens in, up to 64 out (40 made), 0.5 s each; the pacers take an input
bound of 60 (above the 15 counted) + 64, Bedrock reserves 15 + 64."""


class Bedrock(SimulatedBedrock):
    """The emulator's buckets of one quota on the test's clock (``palette.devstack.quota_sim``)."""

    def __init__(self, clock: Clock, tpm: float, noise: float = 0.0, seed: int = 7) -> None:
        buckets = QuotaBuckets({"m": QuotaLimits(tpm=tpm)}, now=clock.now)
        super().__init__(clock, buckets, SHAPE, noise=noise, seed=seed)

    def run(
        self, pacers: Sequence[Pacer], seconds: float, workers: int = 8, bound: int = 60
    ) -> None:
        """Calls as fast as paced; ``bound`` is the input bound the pacers take for each."""
        self.shape = dataclasses.replace(SHAPE, ask=bound + 64)
        super().run(pacers, seconds, workers)


class Unpaced:
    """A caller that never waits: every call it is asked for goes out."""

    def __init__(self) -> None:
        self.answered = 0
        self.throttles = 0

    def try_take(self, tokens: int) -> int:
        return tokens

    def settle(self, ticket: int, input_tokens: int, output_tokens: int) -> None:
        self.answered += 1

    def throttled(self, ticket: int) -> None:
        self.throttles += 1


class TestTheSimulator:
    def test_an_unpaced_caller_gets_what_the_bucket_holds_and_hears_of_throttles_a_tick_on(
        self,
    ) -> None:
        clock = Clock()
        bedrock = Bedrock(clock, 790.0)  # a full bucket holds ten reservations of 79
        caller = Unpaced()
        bedrock.step([caller], workers=20)
        assert (bedrock.admitted, bedrock.throttled) == (10, 10)
        bedrock.step([caller], workers=20)
        assert caller.throttles == 10  # told one tick after the refusal
        assert caller.answered == 0  # the admitted ones take 0.5 s
        bedrock.run([caller], 0.5, workers=20)
        assert caller.answered == 10
        assert bedrock.used == 10 * (15 + 40)  # settled at what they used


class TestAgainstBedrocksBuckets:
    def test_generators_sharing_a_quota_fill_it_and_are_not_throttled(self) -> None:
        clock, tpm = Clock(), 6000.0
        bedrock = Bedrock(clock, tpm)
        bedrock.buckets.admit("m", int(tpm), clock.now)  # its burst spent: the refill binds
        shares = fair_shares(tpm * 0.98, {"a": None, "b": None, "c": None})
        pacers = [pacer(clock, quota=tpm) for _ in shares]
        for p, share in zip(pacers, shares.values(), strict=True):
            p.set_share(share)
        bedrock.run(pacers, 10.0)  # settle in
        before = bedrock.used
        bedrock.run(pacers, 60.0)
        assert (bedrock.used - before) / tpm >= 0.95
        assert bedrock.throttled == 0

    def test_a_quota_halved_under_four_generators_throttles_under_2_percent_after_10_s(
        self,
    ) -> None:
        """The bench's quota change, smaller: the table keeps the whole quota, Bedrock halves it."""
        clock, tpm = Clock(), 60000.0
        bedrock = Bedrock(clock, tpm)
        bedrock.buckets.admit("m", int(tpm), clock.now)
        shares = fair_shares(tpm * 0.98, dict.fromkeys("abcd"))
        pacers = [pacer(clock, quota=tpm) for _ in shares]
        for p, share in zip(pacers, shares.values(), strict=True):
            p.set_share(share, len(shares))
        bedrock.run(pacers, 20.0)
        assert bedrock.throttled == 0
        bedrock.buckets.configure({"m": QuotaLimits(tpm=tpm / 2)}, clock.now)
        bedrock.buckets.drain("m", clock.now)
        bedrock.run(pacers, 10.0)
        assert bedrock.throttled > 0  # the pacers learnt it from throttles
        admitted, throttled = bedrock.admitted, bedrock.throttled
        bedrock.run(pacers, 30.0)
        calls = bedrock.admitted - admitted + bedrock.throttled - throttled
        assert calls > 150
        assert (bedrock.throttled - throttled) / calls < 0.02

    def test_an_unknown_quota_is_found_with_few_throttles(self) -> None:
        clock, tpm = Clock(), 6000.0
        bedrock = Bedrock(clock, tpm)
        p = pacer(clock, quota=None)
        bedrock.run([p], 60.0)  # its burst spent, the rate found
        before, throttled = bedrock.used, bedrock.throttled
        bedrock.run([p], 60.0)
        assert (bedrock.used - before) / tpm >= 0.85
        assert bedrock.throttled - throttled <= 0.05 * (bedrock.used - before) / 55

    def test_an_unknown_quota_whose_calls_ask_far_more_than_they_use_is_found(self) -> None:
        """The first throttles come before any answer: the rate decreases from what the calls
        asked, several times what they use. That ask is no use the quota allowed: were it the
        floor's reference, the floor (5 % of 126,720 or 318,720 a minute) would stay above the quota
        (6,000) and a third of the calls would be throttled for as long as the job runs (34 and
        48 of about 108 in the second minute measured)."""
        for bound in (200, 600):
            clock, tpm = Clock(), 6000.0
            bedrock = Bedrock(clock, tpm)
            bedrock.buckets.admit("m", int(tpm), clock.now)  # drained: throttles come first
            p = pacer(clock, quota=None)
            bedrock.run([p], 60.0, bound=bound)
            before, throttled = bedrock.used, bedrock.throttled
            bedrock.run([p], 60.0, bound=bound)
            assert (bedrock.used - before) / tpm >= 0.85, bound
            assert bedrock.throttled - throttled <= 0.05 * (bedrock.used - before) / 55, bound


class TestRandomThrottles:
    """Throttles that no rate changes (the emulator's ``throttle_rate``; Bedrock's capacity).

    Each case runs ten seeds and checks the median and the worst.
    """

    def test_an_unknown_quota_is_not_paced_down_by_them(self) -> None:
        calm = Bedrock(Clock(), 1e9)
        calm.run([pacer(calm.clock, quota=None)], 30.0)
        ratios = []
        for seed in range(10):
            clock = Clock()
            bedrock = Bedrock(clock, 1e9, noise=0.3, seed=seed)
            bedrock.run([pacer(clock, quota=None)], 30.0)
            assert bedrock.throttled > 100
            ratios.append(bedrock.admitted / calm.admitted)
        assert statistics.median(ratios) >= 0.93, ratios
        assert min(ratios) >= 0.9, ratios

    def test_a_known_quota_is_still_filled(self) -> None:
        fills = []
        for seed in range(10):
            clock, tpm = Clock(), 20000.0  # about 6 calls a second
            bedrock = Bedrock(clock, tpm, noise=0.3, seed=seed)
            bedrock.buckets.admit("m", int(tpm), clock.now)
            p = pacer(clock, quota=tpm * 0.98)
            bedrock.run([p], 30.0)  # the throttles' share is learnt in the first seconds
            before = bedrock.used
            bedrock.run([p], 60.0)
            fills.append((bedrock.used - before) / tpm)
        assert statistics.median(fills) >= 0.93, fills
        assert min(fills) >= 0.75, fills  # seed 5: 0.79 (a test that decided "a quota" wrongly)

    def test_an_unknown_quota_behind_them_is_still_found(self) -> None:
        fills, shares = [], []
        for seed in range(10):
            clock, tpm = Clock(), 6000.0
            bedrock = Bedrock(clock, tpm, noise=0.1, seed=seed)
            p = pacer(clock, quota=None)
            bedrock.run([p], 60.0)
            before, admitted, throttled = bedrock.used, bedrock.admitted, bedrock.throttled
            bedrock.run([p], 60.0)
            fills.append((bedrock.used - before) / tpm)
            calls = bedrock.admitted - admitted + bedrock.throttled - throttled
            shares.append((bedrock.throttled - throttled) / calls)
        assert statistics.median(fills) >= 0.9, fills
        assert min(fills) >= 0.8, fills
        # Not a storm that never ends: a known weakness, docs/internals.md gives the share.
        assert max(shares) < 0.9, shares


class TestWaiting:
    async def test_waiters_are_served_in_order_as_the_bucket_refills(self) -> None:
        p = ModelPacer("m", 60_000.0)  # a thousand tokens a second, on the real clock
        p.set_share(60_000.0)
        order: list[int] = []

        async def call(k: int) -> None:
            await p.take(200)
            order.append(k)

        await asyncio.wait_for(asyncio.gather(*(call(k) for k in range(5))), 5)
        assert order == [0, 1, 2, 3, 4]
        assert p.waited_seconds > 0.5  # 1,000 tokens at 1,000 a second

    async def test_unavailability_ends_the_waiting_calls(self) -> None:
        p = ModelPacer("m", 60.0)  # one token a second
        p.set_share(60.0)
        waiting = asyncio.ensure_future(p.take(1_000))
        await asyncio.sleep(0.01)
        assert p.waiting == 1
        p.fail_waiters(ModelUnavailableError("m", 301.0))
        with pytest.raises(ModelUnavailableError, match="301 s"):
            await waiting

    async def test_a_cancelled_waiter_leaves_the_queue(self) -> None:
        p = ModelPacer("m", 60.0)
        p.set_share(60.0)
        waiting = asyncio.ensure_future(p.take(1_000))
        await asyncio.sleep(0.01)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert p.try_take(0) is not None
