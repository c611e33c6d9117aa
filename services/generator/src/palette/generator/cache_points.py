"""The messages and system prompt of a Converse call, with its cache points. Pure logic.

A request with ``cache_split`` (``palette.common.prompt_cache.cache_split``) gets a
``cachePoint`` block (``{"type": "default"}``: Bedrock's 5-minute cache) after its
system prompt and, when the split is inside the prompt, after the prompt's static
prefix, which becomes a text block of its own. Without it the call is sent as
before: one text block, and the system prompt alone.
"""

from __future__ import annotations

from typing import Any

CACHE_POINT: dict[str, Any] = {"cachePoint": {"type": "default"}}


def converse_content(
    prompt: str, system: str | None, cache_split: int | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
    """``(messages, system)`` of a one-turn call (``system`` None: no system prompt)."""
    if cache_split is None:
        content: list[dict[str, Any]] = [{"text": prompt}]
        blocks = [{"text": system}] if system else None
    else:
        split = max(0, min(cache_split, len(prompt)))
        head, tail = prompt[:split], prompt[split:]
        content = [{"text": head}, dict(CACHE_POINT)] if head else []
        content.extend([{"text": tail}] if tail or not content else [])
        blocks = [{"text": system}, dict(CACHE_POINT)] if system else None
    return [{"role": "user", "content": content}], blocks
