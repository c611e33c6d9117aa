"""Where a step that caches its prompt puts its cache points. Pure logic, no I/O.

A step with ``cache_prompt: true`` is sent with a Converse ``cachePoint`` after
its system prompt (when it has one) and after its prompt's static prefix: the
template's literal text before its first ``{{``, ``{%`` or ``{#``, which every
record renders the same. The model caches the prefix up to a cache point when
it is at least the model's minimum length (``pricing.json``'s
``cache.min_tokens``); a later call that sends the same prefix within the
cache's time to live reads it from the cache instead, billed at the cache-read
price. The first call writes it, billed at the cache-write price; so the worst
case of a cached call prices every input token at the higher of the input and
cache-write prices (``TokenPrice.worst_input_picos``).
"""

from __future__ import annotations

import functools
import re

_FIRST_TAG = re.compile(r"\{[{%#]")


@functools.lru_cache(maxsize=256)
def static_prefix(source: str) -> str:
    """The literal text of a template before its first Jinja tag (all of it when none)."""
    match = _FIRST_TAG.search(source)
    return source if match is None else source[: match.start()]


def cache_split(source: str, rendered: str) -> int:
    """Where the cache point goes in a rendered prompt: after its static prefix.

    The prefix as written, or without its trailing whitespace when whitespace
    control (``{%-``) trimmed it; 0 when the template starts with a tag (then
    only the system prompt is cached).
    """
    literal = static_prefix(source)
    for candidate in (literal, literal.rstrip()):
        if candidate.strip() and rendered.startswith(candidate):
            return len(candidate)
    return 0
