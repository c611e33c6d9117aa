"""The worst-case cost of model calls: one rule for every service, no I/O.

The rule. A call's worst case is its input-token bound at the input price plus
its ``max_tokens`` at the output price (integer picodollars). A step that caches
its prompt (``cache_prompt``) may write every input token to the cache, so its
input tokens count at the higher of the input and cache-write prices. The input-token
bound is one token per byte of UTF-8 input text plus ``MESSAGE_OVERHEAD_TOKENS``
per message (``palette.common.token_bounds.input_token_bound``).

Why it is a true upper bound of what a call is billed, once its prompt is
rendered (the generator's check before each call, and each call of a preview
run): every token of a byte-level tokenizer covers at least one byte, so the
provider counts no more input tokens than bytes plus the chat template's own
tokens per message; and the model writes at most ``max_tokens`` output tokens.
Input and output prices are exact per-token integers, so the product and the
sum are exact too. Only this figure decides whether a call may start, which is
what keeps settled spend within the budget.

Before a prompt is rendered the same rule is applied with the text not known
yet counted at a bound (``record_worst_case``, ``pending_input_bound``):

- an earlier step's output at ``OUTPUT_BYTES_PER_TOKEN`` bytes per token of its
  ``max_tokens``;
- the seed record at its real size as JSON (``seed_bytes``), once;
- a step's template source at its own size, with what its call adds to the system
  text (a judge's instructions, a structured step's schema: ``Step.bound_system``).

These figures (the preview's worst case, the scheduler's first lease, the
generator's estimate of a whole record) equal the check before the call when
the text is as large as counted, and bound it when each earlier output takes at
most 8 bytes per token (the emulator writes at most 4; English text takes about
4) and the template includes the seed at most once and expands no loops. They
size leases and admit records; they never let a call start.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from palette.common.pricing import TokenPrice
from palette.common.templates import Step
from palette.common.token_bounds import input_token_bound

OUTPUT_BYTES_PER_TOKEN = 8
"""Bytes an output token is counted at once it is text in a later prompt (generous)."""

_EMPTY: Mapping[str, int] = {}


def call_worst_case(
    price: TokenPrice, input_tokens: int, max_tokens: int, cached: bool = False
) -> int:
    """The rule: ``input_tokens`` at the (cached: worst) input price, ``max_tokens`` at output."""
    return input_tokens * price.worst_input_picos(cached) + max_tokens * price.output_picos


def rendered_call_worst_case(
    price: TokenPrice, prompt: str, system: str | None, max_tokens: int, cached: bool = False
) -> int:
    """Worst case of a call whose prompt and system are rendered: a true upper bound."""
    return call_worst_case(price, input_token_bound(prompt, system), max_tokens, cached)


def output_bytes(max_tokens: int) -> int:
    """Bytes at which outputs of ``max_tokens`` tokens are counted in a later prompt."""
    return max_tokens * OUTPUT_BYTES_PER_TOKEN


def seed_bytes(seed: Mapping[str, Any]) -> int:
    """Size of a seed record as JSON in UTF-8: what a prompt including all of it adds."""
    return len(json.dumps(seed, ensure_ascii=False).encode())


def pending_input_bound(prompt: str, system: str | None, pending_bytes: int) -> int:
    """Input bound of a call rendered but for ``pending_bytes`` of text still to come.

    A system present (not None) counts its message overhead even when its known
    part is empty, since the text still to come may fill it; so with no pending
    bytes this is never below ``input_token_bound(prompt, system)``.
    """
    bound = input_token_bound(prompt) + pending_bytes
    if system is not None:
        bound += input_token_bound(system)
    return bound


def step_input_estimate(step: Step, seed_size: int, earlier_output_tokens: int) -> int:
    """Input bound of a step not rendered yet.

    Args:
        step: the step (its prompt and system source are counted as they are, with
            what its call adds to the system text: a judge's instructions, the
            schema of a structured step, as ``Step.bound_system`` counts it once rendered).
        seed_size: ``seed_bytes`` of the record's seed.
        earlier_output_tokens: the summed ``max_tokens`` of the steps before it.
    """
    return (
        input_token_bound(step.prompt, step.bound_system(step.call_system(step.system)))
        + seed_size
        + output_bytes(earlier_output_tokens)
    )


def record_worst_case(
    steps: Sequence[Step],
    prices: Mapping[str, TokenPrice],
    seed_size: int,
    known: Mapping[str, int] = _EMPTY,
    observed: Mapping[str, int] = _EMPTY,
) -> int:
    """Worst case of one whole record, in picodollars.

    Args:
        steps: the template's steps.
        prices: per-token price of each step's model.
        seed_size: ``seed_bytes`` of the record's seed (of the largest seed, for a job).
        known: exact worst cases of steps already rendered for this record.
        observed: the largest exact worst case seen per step so far.

    Returns:
        The sum over steps of the exact worst case where known, else the largest
        observed, else the rule applied to ``step_input_estimate``.
    """
    total = 0
    earlier_output_tokens = 0
    for step in steps:
        if step.id in known:
            total += known[step.id]
        elif step.id in observed:
            total += observed[step.id]
        else:
            bound = step_input_estimate(step, seed_size, earlier_output_tokens)
            total += call_worst_case(prices[step.model], bound, step.max_tokens, step.cache_prompt)
        earlier_output_tokens += step.max_tokens
    return total
