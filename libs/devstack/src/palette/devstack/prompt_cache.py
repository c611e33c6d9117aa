"""The emulator's prompt cache: Converse ``cachePoint`` blocks, as Bedrock bills them. No I/O.

A request's cache points each end a prefix: the system blocks, then the messages'
content blocks, up to the point. A prefix of at least the model's minimum
cacheable length (the pricing table's ``cache.min_tokens``; a model without a
``cache`` entry caches nothing) is cached for ``ttl`` seconds from its last use.
The longest prefix found in the cache comes back as cache-read tokens; the
tokens of the longest prefix beyond it, the first time, as cache-write tokens
(both left out of ``inputTokens``, as Bedrock reports them). Only calls at the
``default`` service tier cache: the pricing table prices cache tokens there only. Prefixes are keyed
by model and a digest of their blocks, so only the same model sending the same
text reads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from palette.common.pricing import UnknownModelError, load_pricing
from palette.devstack.converse import (
    MESSAGE_OVERHEAD_TOKENS,
    Completion,
    ConverseCall,
    count_tokens,
)
from palette.devstack.structured_answers import StructuredCompletion

AnyCompletion = TypeVar("AnyCompletion", bound=Completion | StructuredCompletion)

MAX_ENTRIES = 100_000
"""Prefixes kept at most (the oldest expiry goes first beyond it)."""


@dataclass(frozen=True, slots=True)
class CacheUsage:
    """Input tokens a call read from and wrote to the cache."""

    read: int = 0
    write: int = 0


def cache_points(call: ConverseCall) -> list[tuple[int, bytes]]:
    """``(tokens before it, digest of the prefix)`` of each cache point, in order.

    Tokens are counted as ``converse.input_tokens`` counts them: a system prompt
    with text and each message add their overhead once.
    """
    digest = hashlib.blake2b(digest_size=16)
    points: list[tuple[int, bytes]] = []
    tokens = 0
    sections = [("system", call.system)] + [
        (str(message["role"]), message["content"]) for message in call.messages
    ]
    for role, blocks in sections:
        opened = False
        for block in blocks:
            if "cachePoint" in block:
                points.append((tokens, digest.copy().digest()))
                continue
            text = block.get("text")
            if not isinstance(text, str) or (role == "system" and not text):
                continue
            if not opened:
                opened = True
                tokens += MESSAGE_OVERHEAD_TOKENS
                digest.update(f"\x00{role}\x00".encode())
            tokens += count_tokens(text)
            digest.update(json.dumps(block, sort_keys=True).encode())
    return points


class PromptCache:
    """Prefixes cached per model, each until its expiry."""

    def __init__(self, min_tokens: Mapping[str, int]) -> None:
        self._min_tokens = dict(min_tokens)
        self._expiry: dict[tuple[str, bytes], float] = {}

    def use(self, model_id: str, call: ConverseCall, ttl: float, now: float) -> CacheUsage:
        """What the call reads from and writes to the cache; its prefixes are cached anew."""
        minimum = self._min_tokens.get(model_id)
        if minimum is None or call.service_tier != "default":
            return CacheUsage()
        eligible = [(tokens, key) for tokens, key in cache_points(call) if tokens >= minimum]
        if not eligible:
            return CacheUsage()
        read = 0
        for tokens, key in eligible:
            if self._expiry.get((model_id, key), float("-inf")) > now:
                read = max(read, tokens)
        longest = eligible[-1][0]
        for _, key in eligible:
            self._expiry[(model_id, key)] = now + ttl
        self._trim(now)
        return CacheUsage(read=read, write=max(longest - read, 0))

    def _trim(self, now: float) -> None:
        if len(self._expiry) <= MAX_ENTRIES:
            return
        for key, until in list(self._expiry.items()):
            if until <= now:
                del self._expiry[key]
        while len(self._expiry) > MAX_ENTRIES:
            del self._expiry[min(self._expiry, key=self._expiry.__getitem__)]

    def clear(self) -> int:
        """Forget every prefix; how many there were."""
        count = len(self._expiry)
        self._expiry.clear()
        return count


def with_cache(completion: AnyCompletion, usage: CacheUsage) -> AnyCompletion:
    """A completion's usage with its cache tokens taken out of ``input_tokens``."""
    if not (usage.read or usage.write):
        return completion
    rest = max(completion.input_tokens - usage.read - usage.write, 0)
    return replace(completion, input_tokens=rest, cache_read=usage.read, cache_write=usage.write)


def cache_minimums(models: Iterable[str], pricing_file: str | None = None) -> dict[str, int]:
    """The minimum cacheable prefix of each model that has prompt caching (pricing table)."""
    pricing = load_pricing(pricing_file)
    found = {}
    for model in models:
        with contextlib.suppress(UnknownModelError):
            entry = pricing.cache(model)
            if entry is not None:
                found[model] = entry.min_tokens
    return found
