"""Upper bounds on input tokens, for the worst-case cost of a call.

A provider's tokenizer is not available offline, so the check before a call
uses a bound no tokenizer exceeds: every token of a byte-level BPE covers at
least one byte of UTF-8, plus a fixed allowance for the chat template's own
tokens per message. Actual usage from the response settles the ledger; the
bound only decides whether a call may start.
"""

from __future__ import annotations

MESSAGE_OVERHEAD_TOKENS = 32


def input_token_bound(prompt: str, system: str | None = None) -> int:
    """An upper bound on the input tokens of a one-turn Converse call."""
    total = len(prompt.encode("utf-8")) + MESSAGE_OVERHEAD_TOKENS
    if system:
        total += len(system.encode("utf-8")) + MESSAGE_OVERHEAD_TOKENS
    return total
