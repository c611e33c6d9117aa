"""Bedrock model ids and the ids of cross-region inference profiles.

A cross-region (system-defined) inference profile's id is its base model's id behind
a geography prefix, e.g. ``us.anthropic.claude-haiku-4-5-20251001-v1:0``; ``global.``
profiles route anywhere. A profile is priced as its base model but has quotas of
its own (``palette.common.quotas``).
"""

from __future__ import annotations

from typing import Final

PROFILE_PREFIXES: Final = ("us.", "eu.", "apac.", "global.")


def profile_prefix(model_id: str) -> str | None:
    """The geography prefix of an inference profile id (``"us."``), None for a model id."""
    return next((prefix for prefix in PROFILE_PREFIXES if model_id.startswith(prefix)), None)


def base_model_id(model_id: str) -> str:
    """The foundation model an id names: a profile id without its prefix, else the id."""
    prefix = profile_prefix(model_id)
    return model_id[len(prefix) :] if prefix else model_id
