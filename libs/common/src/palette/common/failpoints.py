"""Failpoints: named places where a fault test may crash or stall a service on purpose.

The fault suite (tests/faults) must kill a process at a precise moment, such as
between accounting's database write and its acknowledgement, which no signal
sent from outside can hit reliably. A service calls ``hit("<name>")`` at such
a place (``await reached("<name>")`` where the fault may also be a stall);
``PALETTE_FAILPOINTS`` arms some of them when the process starts::

    PALETTE_FAILPOINTS="accounting.after_write=kill:0.25,scheduler.before_reserve=sleep:12"

arms ``accounting.after_write`` to ``kill -9`` the process with probability
0.25 each time it is reached, and makes ``scheduler.before_reserve`` wait 12
seconds (on the event loop, as a slow step would) each time. ``raise[:p]``
makes the place raise ``FailpointRaisedError``, as a call there that failed
would (a publish, a write). Unset
(production), ``hit`` is one dictionary lookup. A malformed value stops the
service at start with the reason.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
from collections.abc import Mapping
from typing import NamedTuple

ENV = "PALETTE_FAILPOINTS"
ACTIONS = ("kill", "raise", "sleep")
_FORM = "name=kill[:probability], name=raise[:probability] or name=sleep:seconds"


class FailpointError(ValueError):
    """``PALETTE_FAILPOINTS`` cannot be parsed (the message says where)."""


class FailpointRaisedError(RuntimeError):
    """A failpoint armed to ``raise`` fired."""


class Rule(NamedTuple):
    """What an armed failpoint does: ``kill`` with a probability, or ``sleep`` seconds."""

    action: str
    value: float


def _number(entry: str, text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise FailpointError(f"{ENV}: {entry!r}: {text!r} is not a number") from None


def parse(spec: str) -> dict[str, Rule]:
    """``name=kill:probability`` and ``name=sleep:seconds`` entries, comma separated.

    Raises:
        FailpointError: an entry is malformed, a probability is not in (0, 1] or
            a sleep is not a positive number of seconds.
    """
    armed: dict[str, Rule] = {}
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        name, sep, rule = entry.partition("=")
        action, _, value = (part.strip() for part in rule.partition(":"))
        if not sep or not name.strip() or action not in ACTIONS:
            raise FailpointError(f"{ENV}: {entry!r} is not {_FORM}")
        if action in {"kill", "raise"}:
            probability = _number(entry, value) if value else 1.0
            if not 0.0 < probability <= 1.0:
                raise FailpointError(f"{ENV}: {entry!r}: the probability must be in (0, 1]")
            armed[name.strip()] = Rule(action, probability)
            continue
        seconds = _number(entry, value) if value else 0.0
        if seconds <= 0.0:
            raise FailpointError(f"{ENV}: {entry!r}: a sleep needs a positive number of seconds")
        armed[name.strip()] = Rule("sleep", seconds)
    return armed


_armed: Mapping[str, Rule] = parse(os.environ.get(ENV, ""))


def hit(name: str) -> None:
    """Crash this process (SIGKILL) here, or raise, if the failpoint ``name`` is so armed and fires.

    Raises:
        FailpointRaisedError: ``name`` is armed to raise and fired.
    """
    rule = _armed.get(name)
    if rule is None or rule.action == "sleep" or random.random() >= rule.value:  # noqa: S311
        return
    if rule.action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    raise FailpointRaisedError(f"failpoint {name} raised")


async def reached(name: str) -> None:
    """``hit``, and wait here if the failpoint ``name`` is armed to sleep."""
    rule = _armed.get(name)
    if rule is None:
        return
    if rule.action == "sleep":
        await asyncio.sleep(rule.value)
    else:
        hit(name)
