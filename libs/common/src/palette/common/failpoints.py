"""Failpoints: named places where a fault test may crash a service on purpose.

The fault suite (tests/faults) must kill a process at a precise moment, such as
between accounting's database write and its acknowledgement, which no signal
sent from outside can hit reliably. A service calls ``hit("<name>")`` at such
a place; ``PALETTE_FAILPOINTS`` arms some of them when the process starts::

    PALETTE_FAILPOINTS="accounting.after_write=kill:0.25"

arms ``accounting.after_write`` to ``kill -9`` the process with probability
0.25 each time it is reached. Unset (production), ``hit`` is one dictionary
lookup. A malformed value stops the service at start with the reason.
"""

from __future__ import annotations

import os
import random
import signal
from collections.abc import Mapping

ENV = "PALETTE_FAILPOINTS"
ACTIONS = ("kill",)


class FailpointError(ValueError):
    """``PALETTE_FAILPOINTS`` cannot be parsed (the message says where)."""


def parse(spec: str) -> dict[str, float]:
    """``name=kill:probability`` entries, comma separated, to {name: probability}.

    Raises:
        FailpointError: an entry is malformed or its probability is not in (0, 1].
    """
    armed: dict[str, float] = {}
    for raw in spec.split(","):
        entry = raw.strip()
        if not entry:
            continue
        name, sep, rule = entry.partition("=")
        action, _, chance = rule.partition(":")
        if not sep or not name.strip() or action.strip() not in ACTIONS:
            raise FailpointError(f"{ENV}: {entry!r} is not name=kill[:probability]")
        try:
            probability = float(chance) if chance.strip() else 1.0
        except ValueError:
            raise FailpointError(f"{ENV}: {entry!r}: {chance!r} is not a number") from None
        if not 0.0 < probability <= 1.0:
            raise FailpointError(f"{ENV}: {entry!r}: the probability must be in (0, 1]")
        armed[name.strip()] = probability
    return armed


_armed: Mapping[str, float] = parse(os.environ.get(ENV, ""))


def hit(name: str) -> None:
    """Crash this process (SIGKILL) here if the failpoint ``name`` is armed and fires."""
    probability = _armed.get(name)
    if probability is not None and random.random() < probability:  # noqa: S311 - not crypto
        os.kill(os.getpid(), signal.SIGKILL)
