import pytest

from palette.accounting import ledger
from palette.common.messages import RetryCounts, StepUsage
from palette.common.pricing import PricingTable

pytestmark = pytest.mark.unit
MODEL = "amazon.nova-lite-v1:0"


def usage(step: str, i: int, o: int, calls: int = 1) -> StepUsage:
    return StepUsage(step_id=step, model_id=MODEL, calls=calls, input_tokens=i, output_tokens=o)


class TestBudgetLease:
    def test_grants_what_is_asked_when_available(self) -> None:
        assert ledger.grant(available=1000, amount=300, minimum=10) == 300

    def test_grants_the_rest_when_less_than_asked_but_at_least_minimum(self) -> None:
        assert ledger.grant(available=50, amount=300, minimum=10) == 50

    def test_denies_lease_larger_than_remaining_budget(self) -> None:
        assert ledger.grant(available=9, amount=300, minimum=10) is None

    def test_never_grants_beyond_available(self) -> None:
        for available in range(0, 200, 7):
            granted = ledger.grant(available, 150, 5)
            assert granted is None or granted <= available


class TestBudgetExceeded:
    def test_a_denial_with_no_lease_open_ends_the_job(self) -> None:
        denied = ledger.Reservation(granted=None, available=9, reserved=0)
        assert ledger.budget_exceeded(denied)

    def test_a_denial_while_leases_are_open_waits_for_their_money(self) -> None:
        denied = ledger.Reservation(granted=None, available=9, reserved=1)
        assert not ledger.budget_exceeded(denied)

    def test_a_grant_never_ends_the_job(self) -> None:
        for available, reserved in ((0, 300), (700, 300)):
            granted = ledger.Reservation(granted=300, available=available, reserved=reserved)
            assert not ledger.budget_exceeded(granted)

    def test_a_grant_that_takes_the_last_picodollar_does_not_end_the_job(self) -> None:
        # The lease is open: when it closes, what it did not spend comes back.
        assert not ledger.budget_exceeded(ledger.Reservation(granted=50, available=0, reserved=50))


class TestHeldForLog:
    def test_an_uncertain_end_waits_for_the_log_when_there_is_one(self) -> None:
        assert ledger.held_for_log(unknown_calls=2, lost_holder=False, log_configured=True)
        assert ledger.held_for_log(unknown_calls=0, lost_holder=True, log_configured=True)

    def test_an_end_that_knows_its_cost_closes_at_once(self) -> None:
        assert not ledger.held_for_log(unknown_calls=0, lost_holder=False, log_configured=True)

    def test_without_a_log_every_end_closes_at_once(self) -> None:
        for calls, lost in ((2, False), (0, True), (0, False)):
            assert not ledger.held_for_log(
                unknown_calls=calls, lost_holder=lost, log_configured=False
            )


class TestLeaseClosedEvent:
    def test_announces_what_the_lease_spent_and_returned_under_its_own_id(self) -> None:
        lease = {"_id": "l-1", "job_id": "j-1", "partition": 3, "amount": 1000, "settled": 450}
        event = ledger.lease_closed(lease)
        assert (event.message_id, event.job_id, event.partition, event.lease_id) == (
            "closed-l-1",
            "j-1",
            3,
            "l-1",
        )
        assert (event.spent, event.returned) == (450, 550)
        assert ledger.lease_closed(lease).message_id == event.message_id


class TestLeaseClosing:
    def test_conserves_money(self) -> None:
        # budget = available + reserved + spent, before and after.
        amount, settled, total = 1000, 300, 450
        closing = ledger.close_lease(amount, settled, total)
        assert closing.extra_spent == 150
        assert closing.reserved_release == 700
        assert closing.returned == 550
        assert -closing.reserved_release + closing.extra_spent + closing.returned == 0

    def test_unused_lease_returns_whole(self) -> None:
        closing = ledger.close_lease(1000, 0, 0)
        assert closing.returned == 1000
        assert closing.extra_spent == 0


class TestUsageMaps:
    def test_usage_map_prices_each_step(self) -> None:
        pricing = PricingTable.load()
        result = ledger.usage_map([usage("a", 10, 20), usage("a", 1, 2), usage("b", 5, 0)], pricing)
        assert result["a"]["input_tokens"] == 11
        assert result["a"]["cost"] == pricing.cost(MODEL, 11, 22)
        assert result["b"]["calls"] == 1

    def test_difference_is_what_total_adds_to_seen(self) -> None:
        pricing = PricingTable.load()
        seen = ledger.usage_map([usage("a", 10, 20)], pricing)
        total = ledger.usage_map([usage("a", 15, 30), usage("b", 1, 1)], pricing)
        diff = ledger.difference(total, seen)
        assert diff["a"]["input_tokens"] == 5
        assert diff["b"]["cost"] == pricing.cost(MODEL, 1, 1)
        assert ledger.merge(seen, diff) == total

    def test_aggregate_increments_encode_model_ids(self) -> None:
        pricing = PricingTable.load()
        inc = ledger.aggregate_increments(ledger.usage_map([usage("a", 10, 20)], pricing))
        assert inc["calls"] == 1
        assert inc["by_model.amazon%2Enova-lite-v1:0.cost"] == pricing.cost(MODEL, 10, 20)
        assert "cost" not in inc  # the ledger's spent is moved separately


class TestRetryCounts:
    def test_a_lease_counts_only_what_happened(self) -> None:
        assert ledger.retry_fields(RetryCounts()) == {}
        assert ledger.retry_fields(RetryCounts(throttled=2, retried=0)) == {"retries.throttled": 2}
        assert ledger.retry_fields(RetryCounts(throttled=2, retried=3)) == {
            "retries.throttled": 2,
            "retries.retried": 3,
        }

    def test_a_closed_lease_adds_its_counters_to_the_ledger_totals(self) -> None:
        assert ledger.retry_totals({"throttled": 2, "retried": 3}) == {
            "throttled_calls": 2,
            "retried_calls": 3,
        }
        assert ledger.retry_totals({}) == {}
