"""The local lease guard: money is reserved before a model call and settled after.

Pure logic, no I/O. Every amount is integer picodollars. A call may start only
if its worst case fits in ``lease - spent - reserved``; its reservation is
released to the actual cost read from the response, or to zero when the call
was refused before the model ran (throttling). A call that may have been billed
without an answer (a timeout, a dropped connection) keeps its reservation held
until the attempt ends, so the lease still bounds what the provider may bill;
the guard remembers such calls by id (``unknown``) for the attempt's end event.
The guard is thread-safe, though the generator only uses it from the event
loop, where every method runs without yielding. Worst cases follow the one
rule of ``palette.common.estimates``.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Reservation:
    """Money set aside for one call in flight."""

    id: int
    amount: int


class LeaseExhaustedError(Exception):
    """A call's worst case does not fit in what is left of the lease."""

    def __init__(self, worst: int, available: int) -> None:
        super().__init__(f"worst case {worst} does not fit in the {available} left of the lease")
        self.worst = worst
        self.available = available


class LeaseGuard:
    """Keeps ``spent + reserved <= amount`` for one attempt's lease."""

    def __init__(self, amount: int, spent: int = 0) -> None:
        if amount < 0 or spent < 0:
            raise ValueError("lease amount and spent must not be negative")
        self._amount = amount
        self._spent = spent
        self._open: dict[int, int] = {}
        self._held = 0
        self._unknown: dict[str, int] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def amount(self) -> int:
        """The lease granted to the attempt."""
        return self._amount

    @property
    def spent(self) -> int:
        """Actual cost of settled calls (and of re-announced parts)."""
        return self._spent

    @property
    def reserved(self) -> int:
        """Worst cases of the calls in flight, plus those held."""
        with self._lock:
            return self._reserved()

    @property
    def held(self) -> int:
        """Worst cases of calls that may have been billed without an answer."""
        return self._held

    @property
    def unknown(self) -> dict[str, int]:
        """Worst case of each held call, by call id (calls whose outcome is unknown)."""
        with self._lock:
            return dict(self._unknown)

    @property
    def available(self) -> int:
        """What a new call may still reserve (never negative)."""
        with self._lock:
            return max(self._amount - self._spent - self._reserved(), 0)

    def _reserved(self) -> int:
        return sum(self._open.values()) + self._held

    def try_reserve(self, worst: int) -> Reservation | None:
        """Reserve ``worst`` if it fits, else return None and change nothing."""
        if worst < 0:
            raise ValueError("a worst case cannot be negative")
        with self._lock:
            if self._spent + self._reserved() + worst > self._amount:
                return None
            reservation = Reservation(next(self._ids), worst)
            self._open[reservation.id] = worst
            return reservation

    def reserve(self, worst: int) -> Reservation:
        """Reserve ``worst`` or raise LeaseExhaustedError."""
        reservation = self.try_reserve(worst)
        if reservation is None:
            raise LeaseExhaustedError(worst, self.available)
        return reservation

    def settle(self, reservation: Reservation, actual: int) -> int:
        """Release a reservation to the actual cost; returns any overrun (> 0 is a bug).

        The actual cost is recorded even when it exceeds the worst case: the
        ledger must see what was spent.
        """
        if actual < 0:
            raise ValueError("an actual cost cannot be negative")
        with self._lock:
            if self._open.pop(reservation.id, None) is None:
                raise ValueError(f"reservation {reservation.id} is not open")
            self._spent += actual
        return max(actual - reservation.amount, 0)

    def release(self, reservation: Reservation) -> None:
        """Release a reservation whose call was refused before the model ran."""
        self.settle(reservation, 0)

    def hold(self, reservation: Reservation, call_id: str) -> None:
        """Keep a reservation whose call ``call_id`` may have been billed without an answer."""
        with self._lock:
            if call_id in self._unknown:
                raise ValueError(f"call {call_id} is held already")
            if self._open.pop(reservation.id, None) is None:
                raise ValueError(f"reservation {reservation.id} is not open")
            self._held += reservation.amount
            self._unknown[call_id] = reservation.amount

    def hold_all(self, reservations: Iterable[Reservation], call_id: str) -> int:
        """Keep the reservations of one call of many entries (a batch job) as one; their sum.

        The call ``call_id`` may have been billed without its results read: its
        entries' worst cases stay held until the attempt ends, as for ``hold``.
        """
        with self._lock:
            if call_id in self._unknown:
                raise ValueError(f"call {call_id} is held already")
            amount = 0
            for reservation in reservations:
                if self._open.pop(reservation.id, None) is None:
                    raise ValueError(f"reservation {reservation.id} is not open")
                amount += reservation.amount
            self._held += amount
            self._unknown[call_id] = amount
        return amount

    def charge(self, cost: int) -> None:
        """Count money already spent under the lease (a re-announced part)."""
        if cost < 0:
            raise ValueError("a cost cannot be negative")
        with self._lock:
            self._spent += cost


class PledgeBook:
    """Estimated money still to come for the records in flight.

    A record starts only when its estimate fits beside what the records
    already in flight may still reserve, so a lease running out abandons few
    half-made records. It is advisory: the guard's reservation before each
    call is what keeps the lease.
    """

    def __init__(self) -> None:
        self._open: dict[int, int] = {}

    def open(self, record: int, estimate: int) -> None:
        """A record starts with this estimate of its whole worst case."""
        self._open[record] = max(estimate, 0)

    def draw(self, record: int, amount: int) -> None:
        """A call of the record reserved ``amount``: that much is no longer to come."""
        if record in self._open:
            self._open[record] = max(self._open[record] - amount, 0)

    def close(self, record: int) -> None:
        """The record finished or was given up."""
        self._open.pop(record, None)

    @property
    def in_flight(self) -> int:
        """Records started and not finished."""
        return len(self._open)

    @property
    def outstanding(self) -> int:
        """What the records in flight may still reserve."""
        return sum(self._open.values())

    def fits(self, available: int, estimate: int) -> bool:
        """Whether a record of this estimate may start now."""
        return available - self.outstanding >= estimate
