"""A time limit on a block of code on the main thread, by an interval timer's signal.

``palette.common.templates.render`` runs each template under one: wall-clock
time (``ITIMER_REAL``, SIGALRM) by default, or the process's CPU time
(``ITIMER_PROF``, SIGPROF), which a loaded machine's scheduling does not use up.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_TIMERS: dict[int, int] = {signal.SIGALRM: signal.ITIMER_REAL, signal.SIGPROF: signal.ITIMER_PROF}


class _Alarm:
    """The limit of the block in progress on the main thread (None: none)."""

    seconds: float | None = None


class Expired(BaseException):
    """The time limit of the block in progress ran out.

    Not an ``Exception``: code in the block that catches errors (a template
    filter's ``except ValueError``) does not swallow it.
    """


def _expire(signum: int, _frame: object) -> None:
    if _Alarm.seconds is None:  # a late alarm after the block ended: stop ticking
        signal.setitimer(_TIMERS[signum], 0)
        return
    raise Expired


@contextmanager
def time_limit(seconds: float, *, cpu: bool = False) -> Iterator[None]:
    """Raise ``Expired`` if the block runs longer than ``seconds`` (of CPU time: ``cpu``).

    Uses an interval timer, which only the main thread can arm; elsewhere the
    block runs without a limit. The timer ticks again every ``seconds`` until the
    block ends, so an alarm that lands where Python drops exceptions (a
    weakref callback, ``__del__``) is followed by another. Where nobody else
    handles the timer's signal, the handler is installed once and stays;
    another handler is put back after each block.
    """
    if threading.current_thread() is not threading.main_thread() or seconds <= 0:
        yield
        return
    signum = signal.SIGPROF if cpu else signal.SIGALRM
    timer = _TIMERS[signum]
    current = signal.getsignal(signum)
    previous = None if current in (_expire, signal.SIG_DFL) else current
    if current is not _expire:
        signal.signal(signum, _expire)
    try:
        _Alarm.seconds = seconds
        signal.setitimer(timer, seconds, seconds)
        yield
    finally:
        while True:  # a tick that lands here ends no later than the next try
            try:
                _Alarm.seconds = None
                signal.setitimer(timer, 0)
                break
            except Expired:
                continue
        if previous is not None:
            signal.signal(signum, previous)
