"""Pure logic of the Bedrock emulator: tokenizer, request checks and deterministic text.

No I/O here, so the rules the emulator answers by can be unit-tested directly.

The tokenizer: text splits on whitespace, and each piece of ``b`` UTF-8 bytes is
``ceil(b / 4)`` tokens. A message costs ``MESSAGE_OVERHEAD_TOKENS`` on top of its
text, and so does a non-empty system prompt. Every token covers at least one
byte, so a one-turn call never counts more than
``palette.common.token_bounds.input_token_bound(prompt, system)``.

The answer is a run of words of at most four bytes each (one token per word),
taken from a fixed corpus at an offset given by a digest of (model, messages,
system, inferenceConfig): the same request always gets the same answer. Its length is
between 40% and 110% of ``maxTokens``, capped at ``maxTokens``; an answer that
hits the cap stops with ``max_tokens``.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

MESSAGE_OVERHEAD_TOKENS = 3
TOKEN_BYTES = 4
MAX_TOKENS_LIMIT = 1_000_000
LENGTH_LOW = 0.4
LENGTH_HIGH = 1.1

_WORDS = (
    "the a of and to in is it that was for on are with as his they be at one have this "
    "from or had by word but what some we can out all were when your said use an each she "
    "do how if will up many then them so make like him into time has look two more go see "
    "way no than been call who its now find long down day did get come made may part data "
    "seed plot map tale hero road rain gold song tree lake city ship star moon fire wind "
    "bird fox. end. now. yes, so,"
)
# Every word is at most four bytes: one token.
VOCABULARY: tuple[str, ...] = tuple(_WORDS.split())

CORPUS_WORDS = 4096
# A fixed run of words; an answer is a slice of it (cyclic), which is cheap to build.
_CORPUS: tuple[str, ...] = tuple(
    random.Random(1009).choices(VOCABULARY, k=CORPUS_WORDS)  # noqa: S311 - not a secret
)
_DOUBLE_CORPUS = _CORPUS + _CORPUS

ROLES = frozenset({"user", "assistant"})
SERVICE_TIERS = frozenset({"default", "flex", "priority"})
"""The ``serviceTier.type`` values served (Bedrock's ``reserved`` needs a reservation)."""


class ConverseRequestError(ValueError):
    """A request Bedrock would refuse with a ValidationException."""


@dataclass(frozen=True, slots=True)
class ConverseCall:
    """The parts of a Converse request the emulator uses."""

    messages: list[dict[str, Any]]
    system: list[dict[str, Any]]
    inference_config: dict[str, Any]
    request_metadata: dict[str, str]
    service_tier: str = "default"


@dataclass(frozen=True, slots=True)
class Completion:
    """A generated answer and its usage."""

    text: str
    input_tokens: int
    output_tokens: int
    stop_reason: str
    cache_read: int = 0
    """Input tokens read from the prompt cache (not in ``input_tokens``)."""
    cache_write: int = 0
    """Input tokens written to the prompt cache (not in ``input_tokens``)."""
    service_tier: str = "default"

    def body(self, seconds: float) -> dict[str, Any]:
        """The Converse response body, ``seconds`` after the request arrived."""
        cached = self.cache_read + self.cache_write
        cache = (
            {"cacheReadInputTokens": self.cache_read, "cacheWriteInputTokens": self.cache_write}
            if cached
            else {}
        )
        return {
            "serviceTier": {"type": self.service_tier},
            "output": {"message": {"role": "assistant", "content": [{"text": self.text}]}},
            "stopReason": self.stop_reason,
            "usage": {
                "inputTokens": self.input_tokens,
                "outputTokens": self.output_tokens,
                "totalTokens": self.input_tokens + self.output_tokens + cached,
                **cache,
            },
            "metrics": {"latencyMs": int(seconds * 1000)},
        }


def count_tokens(text: str) -> int:
    """Tokens of a text: each whitespace-separated piece of b bytes is ceil(b / 4)."""
    if text.isascii():
        return sum((len(piece) + 3) // TOKEN_BYTES for piece in text.split())
    return sum(
        (len(piece.encode("utf-8", "surrogatepass")) + 3) // TOKEN_BYTES for piece in text.split()
    )


def _block_texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [block["text"] for block in blocks if isinstance(block.get("text"), str)]


def input_tokens(messages: list[dict[str, Any]], system: list[dict[str, Any]]) -> int:
    """Input tokens of a call: its messages and system prompt, with their overheads."""
    total = 0
    for message in messages:
        total += MESSAGE_OVERHEAD_TOKENS
        total += sum(count_tokens(text) for text in _block_texts(message["content"]))
    system_texts = [text for text in _block_texts(system) if text]
    if system_texts:
        total += MESSAGE_OVERHEAD_TOKENS + sum(count_tokens(text) for text in system_texts)
    return total


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConverseRequestError(message)


def parse_request(body: Any) -> ConverseCall:
    """Check a Converse request body the way Bedrock does and pick out its parts.

    Raises:
        ConverseRequestError: the body is not a valid Converse request.
    """
    _require(isinstance(body, dict), "The request body must be a JSON object.")
    messages = body.get("messages")
    _require(isinstance(messages, list) and len(messages) > 0, "messages must not be empty.")
    for index, message in enumerate(messages):
        _require(isinstance(message, dict), f"messages.{index} must be an object.")
        _require(message.get("role") in ROLES, f"messages.{index}.role must be user or assistant.")
        content = message.get("content")
        _require(isinstance(content, list), f"messages.{index}.content must be a list.")
        _require(
            all(isinstance(block, dict) for block in content), "content blocks must be objects."
        )
    _require(messages[0]["role"] == "user", "A conversation must start with a user message.")
    system = body.get("system") or []
    _require(isinstance(system, list), "system must be a list.")
    _require(all(isinstance(block, dict) for block in system), "system blocks must be objects.")
    config = body.get("inferenceConfig") or {}
    _require(isinstance(config, dict), "inferenceConfig must be an object.")
    max_tokens = config.get("maxTokens")
    if max_tokens is not None:
        _require(
            isinstance(max_tokens, int) and 1 <= max_tokens <= MAX_TOKENS_LIMIT,
            "inferenceConfig.maxTokens must be a positive integer.",
        )
    metadata = body.get("requestMetadata") or {}
    _require(isinstance(metadata, dict), "requestMetadata must be a map of strings.")
    tier = body.get("serviceTier") or {"type": "default"}
    _require(
        isinstance(tier, dict) and tier.get("type") in SERVICE_TIERS,
        "serviceTier.type must be one of default, flex, priority.",
    )
    return ConverseCall(
        messages, system, config, {str(k): str(v) for k, v in metadata.items()}, tier["type"]
    )


def request_seed(
    model_id: str,
    messages: list[dict[str, Any]],
    system: list[dict[str, Any]],
    inference_config: dict[str, Any],
) -> int:
    """A 64-bit digest of what decides the answer."""
    payload = json.dumps(
        [model_id, messages, system, inference_config], sort_keys=True, separators=(",", ":")
    )
    return int.from_bytes(hashlib.blake2b(payload.encode(), digest_size=8).digest(), "big")


def answer_words(offset: int, count: int) -> list[str]:
    """``count`` words of the corpus from ``offset`` on, wrapping around."""
    offset %= CORPUS_WORDS
    if count <= CORPUS_WORDS:
        return list(_DOUBLE_CORPUS[offset : offset + count])
    whole, rest = divmod(count, CORPUS_WORDS)
    return list(_CORPUS[offset:] + _CORPUS * (whole - 1) + _CORPUS[:offset]) + list(
        _DOUBLE_CORPUS[offset : offset + rest]
    )


def max_tokens_of(call: ConverseCall, default_max_tokens: int) -> int:
    """The call's ``inferenceConfig.maxTokens``, else the model's default."""
    return int(call.inference_config.get("maxTokens") or default_max_tokens)


def complete(model_id: str, call: ConverseCall, default_max_tokens: int) -> Completion:
    """The deterministic answer to a call, with its token usage."""
    max_tokens = max_tokens_of(call, default_max_tokens)
    seed = request_seed(model_id, call.messages, call.system, call.inference_config)
    share = LENGTH_LOW + (LENGTH_HIGH - LENGTH_LOW) * ((seed >> 32) / 2**32)
    wanted = max(1, math.ceil(max_tokens * share))
    count = min(wanted, max_tokens)
    return Completion(
        text=" ".join(answer_words(seed & 0xFFFFFFFF, count)),
        input_tokens=input_tokens(call.messages, call.system),
        output_tokens=count,
        stop_reason="max_tokens" if wanted >= max_tokens else "end_turn",
        service_tier=call.service_tier,
    )


def model_from_path(segment: str) -> str:
    """The model id of a URL path segment (a model's or inference profile's ARN names it)."""
    model = unquote(segment)
    if model.startswith("arn:") and (
        ":foundation-model/" in model or ":inference-profile/" in model
    ):
        return model.rsplit("/", 1)[1]
    return model
