"""The local lease guard and the pledges of records in flight."""

from __future__ import annotations

import random
import threading

import pytest

from palette.generator.budget import LeaseExhaustedError, LeaseGuard, PledgeBook

pytestmark = pytest.mark.unit


class TestLeaseGuard:
    def test_reserves_while_the_worst_case_fits(self) -> None:
        guard = LeaseGuard(100)
        first = guard.try_reserve(60)
        assert first is not None
        assert guard.try_reserve(41) is None
        assert guard.try_reserve(40) is not None
        assert guard.available == 0
        assert guard.reserved == 100

    def test_refused_reservation_changes_nothing(self) -> None:
        guard = LeaseGuard(10)
        assert guard.try_reserve(11) is None
        assert guard.reserved == 0
        assert guard.available == 10

    def test_settles_to_the_actual_cost_and_frees_the_rest(self) -> None:
        guard = LeaseGuard(100)
        reservation = guard.reserve(80)
        assert guard.settle(reservation, 30) == 0
        assert guard.spent == 30
        assert guard.reserved == 0
        assert guard.available == 70

    def test_release_returns_the_whole_reservation(self) -> None:
        guard = LeaseGuard(100)
        reservation = guard.reserve(100)
        guard.release(reservation)
        assert guard.available == 100
        assert guard.spent == 0

    def test_held_reservation_stays_counted(self) -> None:
        guard = LeaseGuard(100)
        reservation = guard.reserve(70)
        guard.hold(reservation, "call-1")
        assert guard.held == 70
        assert guard.try_reserve(31) is None
        assert guard.available == 30

    def test_held_calls_are_remembered_by_id_with_their_worst_case(self) -> None:
        guard = LeaseGuard(100)
        first, second, third = guard.reserve(20), guard.reserve(30), guard.reserve(10)
        guard.hold(first, "a")
        guard.settle(second, 12)
        guard.hold(third, "b")
        assert guard.unknown == {"a": 20, "b": 10}
        assert guard.held == 30
        assert guard.spent == 12

    def test_holding_a_call_id_twice_is_an_error(self) -> None:
        guard = LeaseGuard(100)
        guard.hold(guard.reserve(5), "a")
        with pytest.raises(ValueError, match="held already"):
            guard.hold(guard.reserve(5), "a")

    def test_settling_twice_is_an_error(self) -> None:
        guard = LeaseGuard(100)
        reservation = guard.reserve(10)
        guard.settle(reservation, 5)
        with pytest.raises(ValueError, match="not open"):
            guard.settle(reservation, 5)

    def test_reserve_raises_when_the_call_does_not_fit(self) -> None:
        guard = LeaseGuard(5, spent=3)
        with pytest.raises(LeaseExhaustedError) as info:
            guard.reserve(3)
        assert info.value.available == 2

    def test_reports_an_overrun_but_records_the_truth(self) -> None:
        guard = LeaseGuard(100)
        reservation = guard.reserve(10)
        assert guard.settle(reservation, 15) == 5
        assert guard.spent == 15

    def test_starts_with_what_reannounced_parts_spent(self) -> None:
        guard = LeaseGuard(100, spent=90)
        assert guard.try_reserve(11) is None
        assert guard.try_reserve(10) is not None

    def test_never_exceeds_the_lease_under_concurrent_reservations(self) -> None:
        lease = 1_000_000
        guard = LeaseGuard(lease)
        peak = [0]
        lock = threading.Lock()

        def caller(seed: int) -> None:
            rng = random.Random(seed)
            for _ in range(2_000):
                worst = rng.randint(1, 5_000)
                reservation = guard.try_reserve(worst)
                if reservation is None:
                    continue
                with lock:
                    peak[0] = max(peak[0], guard.spent + guard.reserved)
                guard.settle(reservation, rng.randint(0, worst))

        threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert guard.reserved == 0
        assert guard.spent <= lease
        assert peak[0] <= lease


class TestPledgeBook:
    def test_new_record_waits_for_money_promised_to_records_in_flight(self) -> None:
        book = PledgeBook()
        book.open(1, 60)
        assert not book.fits(100, 50)
        book.draw(1, 20)
        assert book.outstanding == 40
        assert book.fits(100, 50)
        book.close(1)
        assert book.in_flight == 0
        assert book.fits(50, 50)
