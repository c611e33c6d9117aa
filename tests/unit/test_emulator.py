"""The Bedrock emulator's pure logic: tokenizer, answers, faults, request handling."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from palette.common.pricing import load_pricing
from palette.common.token_bounds import input_token_bound
from palette.devstack.bedrock_emulator import INVALID_MODEL, BedrockEmulator
from palette.devstack.billing import BillingLog
from palette.devstack.converse import (
    CORPUS_WORDS,
    MESSAGE_OVERHEAD_TOKENS,
    VOCABULARY,
    ConverseRequestError,
    answer_words,
    complete,
    count_tokens,
    input_tokens,
    model_from_path,
    parse_request,
)
from palette.devstack.faults import EmulatorConfig, FaultInjector
from palette.devstack.httpd import DropConnection, Later, Request, Response
from palette.devstack.invocation_log import InvocationLogDelivery

pytestmark = pytest.mark.unit

MODEL = "amazon.nova-micro-v1:0"
WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u2029\u3000"


def random_text(rng: random.Random, max_len: int = 200) -> str:
    chars = []
    for _ in range(rng.randint(0, max_len)):
        pick = rng.random()
        if pick < 0.2:
            chars.append(rng.choice(WHITESPACE))
        elif pick < 0.5:
            chars.append(chr(rng.randint(0x20, 0x7E)))
        else:
            code = rng.randint(0x80, 0x10FFFF)
            chars.append(chr(code if not 0xD800 <= code <= 0xDFFF else 0x4E00))
    return "".join(chars)


def body(prompt: str, system: str | None = None, **config: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"messages": [{"role": "user", "content": [{"text": prompt}]}]}
    if system is not None:
        data["system"] = [{"text": system}]
    if config:
        data["inferenceConfig"] = config
    return data


class TestTokenizer:
    def test_counts_each_piece_of_up_to_four_bytes_as_one_token(self) -> None:
        assert count_tokens("") == 0
        assert count_tokens("a bb ccc dddd") == 4
        assert count_tokens("abcde") == 2
        assert count_tokens("  spaced\t\nout  ") == 2 + 1
        assert count_tokens("é") == 1  # two bytes
        assert count_tokens("ééé") == 2  # six bytes
        assert count_tokens("日本語") == 3  # nine bytes

    def test_every_vocabulary_word_is_one_token(self) -> None:
        assert all(len(word.encode()) <= 4 and count_tokens(word) == 1 for word in VOCABULARY)

    def test_input_count_never_exceeds_the_shared_bound(self) -> None:
        rng = random.Random(20240601)
        for _ in range(2000):
            prompt = random_text(rng)
            system = random_text(rng, 80) if rng.random() < 0.5 else None
            call = parse_request(body(prompt, system))
            counted = input_tokens(call.messages, call.system)
            assert counted <= input_token_bound(prompt, system), (prompt, system)

    def test_input_count_adds_overhead_per_message_and_system(self) -> None:
        call = parse_request(body("one two", "sys"))
        assert input_tokens(call.messages, call.system) == 2 * MESSAGE_OVERHEAD_TOKENS + 3
        call = parse_request(body("one two", ""))
        assert input_tokens(call.messages, call.system) == MESSAGE_OVERHEAD_TOKENS + 2


class TestDeterministicAnswer:
    def test_same_request_gets_the_same_answer(self) -> None:
        call = parse_request(body("tell me a story", "be brief", maxTokens=100))
        assert complete(MODEL, call, 512) == complete(MODEL, call, 512)

    def test_answer_depends_on_model_prompt_system_and_config(self) -> None:
        base = complete(MODEL, parse_request(body("p", "s", maxTokens=300)), 512).text
        others = [
            complete("amazon.nova-lite-v1:0", parse_request(body("p", "s", maxTokens=300)), 512),
            complete(MODEL, parse_request(body("q", "s", maxTokens=300)), 512),
            complete(MODEL, parse_request(body("p", "t", maxTokens=300)), 512),
            complete(MODEL, parse_request(body("p", "s", maxTokens=300, temperature=0.1)), 512),
        ]
        assert all(other.text != base for other in others)

    def test_output_tokens_match_the_tokenizer_and_respect_max_tokens(self) -> None:
        stops = set()
        for index in range(400):
            max_tokens = 1 + index % 97
            completion = complete(MODEL, parse_request(body(f"p{index}", maxTokens=max_tokens)), 9)
            assert count_tokens(completion.text) == completion.output_tokens
            assert 1 <= completion.output_tokens <= max_tokens
            assert completion.output_tokens >= int(0.4 * max_tokens)
            if completion.stop_reason == "max_tokens":
                assert completion.output_tokens == max_tokens
            stops.add(completion.stop_reason)
        assert stops == {"end_turn", "max_tokens"}

    def test_lengths_vary_with_the_prompt(self) -> None:
        lengths = {
            complete(MODEL, parse_request(body(f"prompt {i}", maxTokens=1000)), 9).output_tokens
            for i in range(50)
        }
        assert len(lengths) > 20
        assert min(lengths) >= 400

    def test_default_max_tokens_applies_when_unset(self) -> None:
        completion = complete(MODEL, parse_request(body("x")), default_max_tokens=7)
        assert completion.output_tokens <= 7

    def test_answer_words_wrap_around_the_corpus(self) -> None:
        for offset, count in [(0, 3), (CORPUS_WORDS - 2, 5), (17, 2 * CORPUS_WORDS + 5)]:
            words = answer_words(offset, count)
            assert len(words) == count
            assert words[:2] == answer_words(offset + CORPUS_WORDS, 2)


class TestRequestValidation:
    @pytest.mark.parametrize(
        "bad",
        [
            [],
            {},
            {"messages": []},
            {"messages": [{"role": "assistant", "content": [{"text": "x"}]}]},
            {"messages": [{"role": "robot", "content": [{"text": "x"}]}]},
            {"messages": [{"role": "user", "content": "x"}]},
            {**body("x"), "inferenceConfig": {"maxTokens": 0}},
            {**body("x"), "system": "text"},
        ],
    )
    def test_refuses_what_bedrock_refuses(self, bad: Any) -> None:
        with pytest.raises(ConverseRequestError):
            parse_request(bad)

    def test_passes_request_metadata_through(self) -> None:
        call = parse_request({**body("x"), "requestMetadata": {"job": "j1"}})
        assert call.request_metadata == {"job": "j1"}

    def test_model_arn_names_its_model(self) -> None:
        arn = "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-micro-v1:0"
        assert model_from_path(arn.replace(":", "%3A").replace("/", "%2F")) == MODEL
        assert model_from_path("amazon.nova-micro-v1%3A0") == MODEL


class TestFaultInjector:
    def test_same_seed_gives_the_same_faults(self) -> None:
        config = EmulatorConfig(throttle_rate=0.2, unavailable_rate=0.1, seed=42)
        one, two = FaultInjector(config), FaultInjector(config)
        drawn = [one.draw(MODEL) for _ in range(200)]
        assert drawn == [two.draw(MODEL) for _ in range(200)]
        assert "ThrottlingException" in drawn

    def test_rates_give_about_the_asked_shares(self) -> None:
        injector = FaultInjector(
            EmulatorConfig(throttle_rate=0.25, billed_timeout_rate=0.25, seed=1)
        )
        outcomes = [injector.draw(MODEL) for _ in range(4000)]
        assert 800 < outcomes.count("ThrottlingException") < 1200
        assert 800 < outcomes.count("billed_timeout") < 1200
        assert outcomes.count("ServiceUnavailableException") == 0

    def test_script_comes_first_then_rates(self) -> None:
        injector = FaultInjector(EmulatorConfig())
        injector.update({"script": ["ModelTimeoutException", "ok", "ThrottlingException"]})
        assert [injector.draw(MODEL) for _ in range(4)] == [
            "ModelTimeoutException",
            "ok",
            "ThrottlingException",
            "ok",
        ]

    def test_faults_only_hit_the_listed_models(self) -> None:
        injector = FaultInjector(EmulatorConfig(throttle_rate=1.0, fault_models=["other"]))
        assert injector.draw(MODEL) == "ok"
        assert injector.draw("other") == "ThrottlingException"

    def test_rejects_rates_adding_up_to_more_than_one(self) -> None:
        injector = FaultInjector(EmulatorConfig())
        with pytest.raises(ValueError, match="more than 1"):
            injector.update({"throttle_rate": 0.6, "unavailable_rate": 0.6})
        assert injector.config.throttle_rate == 0.0

    def test_reset_restores_the_start_configuration(self) -> None:
        injector = FaultInjector(EmulatorConfig(latency_ms=5, seed=3))
        injector.update({"latency_ms": 50, "script": ["ThrottlingException"]})
        injector.update({"reset": True})
        assert injector.snapshot()["latency_ms"] == 5
        assert injector.snapshot()["script"] == []

    def test_latency_adds_jitter_below_its_bound(self) -> None:
        injector = FaultInjector(EmulatorConfig(latency_ms=100, jitter_ms=50, seed=9))
        delays = [injector.latency_seconds() for _ in range(100)]
        assert all(0.1 <= delay < 0.15 for delay in delays)
        assert len(set(delays)) > 50


def settle(result: Response | Later) -> Response:
    while isinstance(result, Later):
        result = result.then()
    return result


def converse(emulator: BedrockEmulator, model: str, data: Any) -> Response:
    path = f"/model/{model.replace(':', '%3A')}/converse"
    return settle(emulator(Request("POST", path, {}, {}, json.dumps(data).encode())))


class TestEmulatorHandler:
    @pytest.fixture
    def emulator(self) -> BedrockEmulator:
        return BedrockEmulator(EmulatorConfig(), load_pricing().models)

    def test_answers_in_converse_shape_and_bills(self, emulator: BedrockEmulator) -> None:
        data = {**body("hello there", maxTokens=50), "requestMetadata": {"job": "j"}}
        response = converse(emulator, MODEL, data)
        assert response.status == 200
        answer = json.loads(response.body)
        usage = answer["usage"]
        assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
        assert answer["stopReason"] in ("end_turn", "max_tokens")
        assert answer["output"]["message"]["content"][0]["text"]
        [entry] = emulator.billing.entries()
        assert entry["request_metadata"] == {"job": "j"}
        assert entry["input_tokens"] == usage["inputTokens"]
        assert ("x-amzn-RequestId", entry["request_id"]) in response.headers

    def test_billing_entry_has_arrival_and_billing_times(self, emulator: BedrockEmulator) -> None:
        path = f"/model/{MODEL.replace(':', '%3A')}/converse"
        waiting = emulator(Request("POST", path, {}, {}, json.dumps(body("hi")).encode()))
        assert isinstance(waiting, Later), "the answer comes after the model's latency"
        between = datetime.now(UTC)
        settle(waiting)
        [entry] = emulator.billing.entries()
        started, billed = (datetime.fromisoformat(entry[k]) for k in ("started_at", "at"))
        assert started <= between <= billed

    def test_unknown_model_is_refused_and_not_billed(self, emulator: BedrockEmulator) -> None:
        response = converse(emulator, "acme.unknown-v1:0", body("x"))
        assert response.status == 400
        assert json.loads(response.body) == {"message": INVALID_MODEL}
        assert dict(response.headers)["x-amzn-ErrorType"].startswith("ValidationException:")
        assert len(emulator.billing) == 0

    @pytest.mark.parametrize(
        ("fault", "status", "billed"),
        [
            ("ThrottlingException", 429, 0),
            ("ServiceUnavailableException", 503, 0),
            ("ModelTimeoutException", 408, 0),
            ("billed_timeout", 408, 1),
        ],
    )
    def test_faults_answer_in_wire_form(
        self, emulator: BedrockEmulator, fault: str, status: int, billed: int
    ) -> None:
        emulator.faults.update({"script": [fault]})
        response = converse(emulator, MODEL, body("x"))
        assert response.status == status
        code = "ModelTimeoutException" if fault == "billed_timeout" else fault
        assert dict(response.headers)["x-amzn-ErrorType"].split(":")[0] == code
        assert len(emulator.billing) == billed

    def test_billed_timeout_can_drop_the_connection(self, emulator: BedrockEmulator) -> None:
        emulator.faults.update({"script": ["billed_timeout"], "billed_timeout_mode": "drop"})
        with pytest.raises(DropConnection):
            converse(emulator, MODEL, body("x"))
        assert len(emulator.billing) == 1

    def test_control_api_changes_config(self, emulator: BedrockEmulator) -> None:
        request = Request("POST", "/_emulator/config", {}, {}, b'{"latency_ms": 12}')
        assert settle(emulator(request)).status == 200
        assert emulator.faults.config.latency_ms == 12
        bad = Request("POST", "/_emulator/config", {}, {}, b'{"throttle_rate": 2}')
        assert settle(emulator(bad)).status == 400


class TestQuotaEnforcement:
    @pytest.fixture
    def emulator(self) -> BedrockEmulator:
        return BedrockEmulator(EmulatorConfig(), load_pricing().models)

    @staticmethod
    def control(
        emulator: BedrockEmulator, method: str, route: str, data: Any = None, **query: str
    ) -> Any:
        raw = json.dumps(data).encode() if data is not None else b""
        response = settle(emulator(Request(method, f"/_emulator/{route}", query, {}, raw)))
        assert response.status == 200, response.body
        return json.loads(response.body)

    def test_over_rpm_is_a_throttle_in_wire_form_logged_counted_and_not_billed(
        self, emulator: BedrockEmulator
    ) -> None:
        self.control(emulator, "POST", "config", {"quotas": {MODEL: {"rpm": 2}}})
        data = {**body("x", maxTokens=20), "requestMetadata": {"job": "q"}}
        statuses = [converse(emulator, MODEL, data).status for _ in range(3)]
        assert statuses == [200, 200, 429]
        throttled = converse(emulator, MODEL, data)
        assert dict(throttled.headers)["x-amzn-ErrorType"].split(":")[0] == "ThrottlingException"
        assert json.loads(throttled.body)["message"].startswith("Too many requests")
        assert len(emulator.billing) == 2
        entries = self.control(emulator, "GET", "throttles", job="q")
        assert [(e["model_id"], e["reason"], e["request_metadata"]) for e in entries] == [
            (MODEL, "rpm", {"job": "q"})
        ] * 2
        assert entries[0]["tokens"] == input_tokens(parse_request(data).messages, []) + 20
        stats = self.control(emulator, "GET", "stats")
        assert (stats["requests"], stats["ThrottlingException"], stats["quota_rpm"]) == (4, 2, 2)

    def test_tpm_reserves_max_tokens_and_settles_to_usage(self, emulator: BedrockEmulator) -> None:
        asked = input_tokens(parse_request(body("x")).messages, []) + 100
        self.control(emulator, "POST", "config", {"quotas": {MODEL: {"tpm": asked}}})
        assert converse(emulator, MODEL, body("x", maxTokens=100)).status == 200
        [entry] = emulator.billing.entries()
        level = self.control(emulator, "GET", "quotas")[MODEL]["levels"]["tpm"]
        used = entry["input_tokens"] + entry["output_tokens"]
        assert level == pytest.approx(asked - used, abs=1)  # plus a few ms of refill
        response = converse(emulator, MODEL, body("x", maxTokens=100))
        assert json.loads(response.body)["message"].startswith("Too many tokens")

    def test_an_injected_fault_gives_the_reservation_back(self, emulator: BedrockEmulator) -> None:
        asked = input_tokens(parse_request(body("x")).messages, []) + 100
        self.control(emulator, "POST", "config", {"quotas": {MODEL: {"tpm": asked}}})
        emulator.faults.update({"script": ["ServiceUnavailableException", "ModelTimeoutException"]})
        assert converse(emulator, MODEL, body("x", maxTokens=100)).status == 503
        assert converse(emulator, MODEL, body("x", maxTokens=100)).status == 408
        assert converse(emulator, MODEL, body("x", maxTokens=100)).status == 200

    def test_config_changes_and_removes_quotas_per_model(self, emulator: BedrockEmulator) -> None:
        profile = "us." + MODEL
        quotas = {MODEL: {"rpm": 1}, profile: {"tpm": 10}}
        self.control(emulator, "POST", "config", {"quotas": quotas})
        assert set(self.control(emulator, "GET", "quotas")) == {MODEL, profile}
        self.control(emulator, "POST", "config", {"quotas": {profile: None}})
        assert set(self.control(emulator, "GET", "quotas")) == {MODEL}
        assert converse(emulator, profile, body("x", maxTokens=100)).status == 200
        self.control(emulator, "POST", "config", {"quotas": None})
        assert self.control(emulator, "GET", "quotas") == {}
        self.control(emulator, "POST", "config", {"quotas": {MODEL: {"rpm": 0}}})
        assert converse(emulator, MODEL, body("x")).status == 429
        self.control(emulator, "POST", "config", {"reset": True})
        assert converse(emulator, MODEL, body("x")).status == 200

    def test_inference_profile_arn_names_the_profile(self) -> None:
        arn = "arn:aws:bedrock:us-east-1:000000000000:inference-profile/us." + MODEL
        assert model_from_path(arn) == "us." + MODEL


class TestInvocationLogQueue:
    @pytest.fixture
    def emulator(self) -> BedrockEmulator:
        # Nothing is delivered: the background delivery is never started here.
        delivery = InvocationLogDelivery(
            "bucket", "logs", account="123456789012", region="us-east-1", flush_seconds=1
        )
        return BedrockEmulator(EmulatorConfig(), load_pricing().models, invocations=delivery)

    @pytest.mark.parametrize(
        ("script", "queued"),
        [
            (["ok"], 1),
            (["billed_timeout"], 1),
            (["ModelTimeoutException"], 0),
            (["ThrottlingException"], 0),
        ],
    )
    def test_every_billed_call_and_nothing_else_is_queued_for_the_log(
        self, emulator: BedrockEmulator, script: list[str], queued: int
    ) -> None:
        emulator.faults.update({"script": script})
        data = {**body("hello"), "requestMetadata": {"lease_id": "L", "call_id": "c"}}
        converse(emulator, MODEL, data)
        assert emulator.invocations is not None
        status = emulator.invocations.status()
        assert status["pending"] == queued == len(emulator.billing)
        assert status["folder"] == "logs/AWSLogs/123456789012/BedrockModelInvocationLogs/us-east-1/"

    def test_the_control_api_reports_the_log(self, emulator: BedrockEmulator) -> None:
        answer = settle(emulator(Request("GET", "/_emulator/invocation-log", {}, {}, b"")))
        assert json.loads(answer.body)["enabled"] is True
        off = BedrockEmulator(EmulatorConfig(), load_pricing().models)
        answer = settle(off(Request("GET", "/_emulator/invocation-log", {}, {}, b"")))
        assert json.loads(answer.body) == {"enabled": False}
        flush = Request("POST", "/_emulator/invocation-log/flush", {}, {}, b"{}")
        assert settle(off(flush)).status == 409


class TestBillingLog:
    def test_filters_and_summarises_by_request_metadata(self) -> None:
        log = BillingLog()
        log.record("r1", MODEL, 10, 20, {"job": "a", "step": "x"})
        log.record("r2", MODEL, 1, 2, {"job": "b"})
        log.record("r3", "amazon.nova-lite-v1:0", 3, 4, {"job": "a", "step": "y"})
        assert [e["request_id"] for e in log.entries(metadata={"job": "a"})] == ["r1", "r3"]
        assert [e["request_id"] for e in log.entries(1)] == ["r2", "r3"]
        summary = log.summary({"job": "a"})
        assert (summary["calls"], summary["input_tokens"], summary["output_tokens"]) == (2, 13, 24)
        assert summary["by_model"][MODEL] == {
            "calls": 1,
            "input_tokens": 10,
            "output_tokens": 20,
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
        }
        assert log.clear() == 3
        assert log.summary()["calls"] == 0
