"""The ``random`` filter's picks, seeded per render so that a record renders the same.

A render given a key (``seeded_draws``; the generator gives a record's job
and index) picks from a generator seeded with it, so the record renders the
same wherever and however often it is rendered; without a key the filter
picks from the process's generator, as Jinja2's own does.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from jinja2.runtime import Context
from jinja2.utils import pass_context


class _Draws:
    """The ``random`` filter's generator in one render, seeded with ``key`` when first used."""

    __slots__ = ("_generator", "key")

    def __init__(self, key: str) -> None:
        self.key = key
        self._generator: random.Random | None = None

    def generator(self) -> random.Random:
        if self._generator is None:
            self._generator = random.Random(self.key)  # noqa: S311 (a prompt's pick, not crypto)
        return self._generator


_DRAWS: ContextVar[_Draws | None] = ContextVar("palette_render_draws", default=None)


@contextmanager
def seeded_draws(key: str | None) -> Iterator[None]:
    """Within the block, the ``random`` filter draws from a generator seeded with ``key``.

    None: from the process's own generator (a different pick each time).
    """
    if key is None:
        yield
        return
    token = _DRAWS.set(_Draws(key))
    try:
        yield
    finally:
        _DRAWS.reset(token)


@pass_context
def random_filter(context: Context, seq: Any) -> Any:
    """Jinja2's ``random`` filter, drawing from the render's seeded generator when it has one."""
    draws = _DRAWS.get()
    chooser = random if draws is None else draws.generator()
    try:
        return chooser.choice(seq)
    except IndexError:
        return context.environment.undefined("No random item, sequence was empty.")
