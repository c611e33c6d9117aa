"""The emulator's quotas for real: its own process, an unmodified boto3 client, the control API."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import pytest

from palette.devstack.emulator_client import EmulatorControl
from tests.integration.test_devstack import bedrock
from tests.integration.waiting import wait_until

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

MODEL = "amazon.nova-micro-v1:0"
PROFILE = "us." + MODEL
RPM = 120  # two a second


class Emulator(NamedTuple):
    url: str
    throttle_file: Path


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Emulator]:
    """A real emulator process started with a quota flag and a throttle file."""
    state = tmp_path_factory.mktemp("emulator")
    port_file, throttle_file = state / "port", state / "throttles.jsonl"
    argv = [sys.executable, "-m", "palette.devstack.bedrock_emulator", "--port", "0"]
    argv += ["--port-file", str(port_file), "--throttle-file", str(throttle_file)]
    argv += ["--quotas", json.dumps({MODEL: {"rpm": RPM}})]
    process = subprocess.Popen(argv, stderr=subprocess.DEVNULL)
    try:
        wait_until(port_file.exists, what="the emulator's port file", timeout=30, interval=0.05)
        yield Emulator(f"http://127.0.0.1:{port_file.read_text()}", throttle_file)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def control(emulator: Emulator) -> Iterator[EmulatorControl]:
    control = EmulatorControl(emulator.url + "/_emulator")
    yield control
    control.reset()


@pytest.fixture
def client(emulator: Emulator) -> BedrockRuntimeClient:
    return bedrock(emulator.url)


def call(client: BedrockRuntimeClient, tag: str, model: str = MODEL, max_tokens: int = 16) -> bool:
    """One Converse call; True when it was answered, False when it was throttled."""
    try:
        client.converse(
            modelId=model,
            messages=[{"role": "user", "content": [{"text": f"Write about {uuid.uuid4()}"}]}],
            inferenceConfig={"maxTokens": max_tokens},
            requestMetadata={"tag": tag},
        )
    except client.exceptions.ThrottlingException:
        return False
    return True


def burst_until_throttled(client: BedrockRuntimeClient, tag: str, limit: int) -> list[bool]:
    outcomes: list[bool] = []
    while not outcomes or outcomes[-1]:
        outcomes.append(call(client, tag))
        assert len(outcomes) <= limit, "never throttled"
    return outcomes


def fresh(control: EmulatorControl, **limits: Any) -> None:
    """Start the model's quota over (a quota set again starts full)."""
    control.remove_quota(MODEL)
    control.set_quota(MODEL, **limits)


class TestQuotaFromTheCommandLine:
    def test_a_burst_beyond_rpm_is_throttled_logged_and_not_billed(
        self, client: BedrockRuntimeClient, control: EmulatorControl, emulator: Emulator
    ) -> None:
        assert control.quotas()[MODEL]["rpm"] == RPM  # from --quotas
        fresh(control, rpm=RPM)  # full again, whatever ran before
        tag = str(uuid.uuid4())
        began = time.monotonic()
        outcomes = [call(client, tag) for _ in range(RPM + 40)]
        took = time.monotonic() - began
        answered = outcomes.count(True)
        # A full bucket of RPM, plus at most what refilled during the burst (its own time).
        assert RPM <= answered <= RPM + took * RPM / 60 + 1
        assert outcomes.count(False) > 0, f"nothing throttled: the burst took {took:.1f} s"
        assert len(control.billing(tag=tag)) == answered
        throttled = control.throttles(tag=tag)
        assert len(throttled) == outcomes.count(False)
        assert {(t["model_id"], t["reason"]) for t in throttled} == {(MODEL, "rpm")}
        assert all(t["tokens"] > 16 and t["at"] for t in throttled)
        assert control.stats()["quota_rpm"] >= len(throttled)
        in_file = [json.loads(line) for line in emulator.throttle_file.read_text().splitlines()]
        assert [t for t in in_file if t["request_metadata"] == {"tag": tag}] == throttled


class TestPacing:
    def test_a_client_pacing_under_the_quota_is_never_throttled(
        self, client: BedrockRuntimeClient, control: EmulatorControl
    ) -> None:
        fresh(control, rpm=RPM)
        tag = str(uuid.uuid4())
        burst_until_throttled(client, tag, RPM + 50)  # the bucket is empty now
        interval = 1.1 * 60 / RPM  # 10% under the quota: the refill arithmetic itself
        paced = []
        for _ in range(6):
            time.sleep(interval)
            paced.append(call(client, tag))
        assert paced == [True] * 6


class TestChangingQuotas:
    def test_raising_and_removing_a_quota_take_effect_at_once(
        self, client: BedrockRuntimeClient, control: EmulatorControl
    ) -> None:
        fresh(control, rpm=3)
        tag = str(uuid.uuid4())
        assert burst_until_throttled(client, tag, 10) == [True] * 3 + [False]
        control.set_quota(MODEL, rpm=1000)  # 997 more of headroom at once
        assert all(call(client, tag) for _ in range(5))
        control.set_quota(MODEL, rpm=0)
        assert not call(client, tag)
        control.remove_quota(MODEL)
        assert all(call(client, tag) for _ in range(5))
        assert len(control.throttles(tag=tag)) == 2

    def test_draining_a_quota_throttles_until_it_refills(
        self, client: BedrockRuntimeClient, control: EmulatorControl
    ) -> None:
        fresh(control, rpm=RPM)
        tag = str(uuid.uuid4())
        assert call(client, tag)
        status = control.drain_quota(MODEL)
        assert status[MODEL]["levels"]["rpm"] <= 0.1  # what refilled since
        assert not call(client, tag)
        with pytest.raises(urllib.error.HTTPError) as refused:
            control.drain_quota(PROFILE)
        assert refused.value.code == 404

    def test_tokens_per_minute_throttle_the_model_but_not_its_profile(
        self, client: BedrockRuntimeClient, control: EmulatorControl
    ) -> None:
        control.remove_quota(MODEL)
        control.set_quota(MODEL, tpm=1000)
        tag = str(uuid.uuid4())
        assert not call(client, tag, max_tokens=1001)  # input + maxTokens > TPM
        assert call(client, tag, model=PROFILE, max_tokens=1001)  # a quota of its own (none)
        assert call(client, tag, max_tokens=500)
        [throttle] = control.throttles(tag=tag)
        assert (throttle["model_id"], throttle["reason"]) == (MODEL, "tpm")
        assert throttle["tokens"] > 1001
        billed = control.billing(tag=tag)
        assert [entry["model_id"] for entry in billed] == [PROFILE, MODEL]


class TestUsagePerSecond:
    def test_rows_show_what_the_quota_let_in_and_refused_each_second(
        self, client: BedrockRuntimeClient, control: EmulatorControl
    ) -> None:
        fresh(control, rpm=3, tpm=100_000)
        control.clear_quota_usage()
        before = int(time.time())
        tag = str(uuid.uuid4())
        outcomes = burst_until_throttled(client, tag, 10)
        rows = control.quota_usage(MODEL)[MODEL]
        assert all(row["t"] >= before for row in rows)
        assert sum(row["admitted"] for row in rows) == outcomes.count(True) == 3
        assert sum(row["throttled"] for row in rows) == 1
        billed = control.billing(tag=tag)
        used = sum(entry["input_tokens"] + entry["output_tokens"] for entry in billed)
        assert sum(row["used"] for row in rows) == used  # burndown 1
        assert sum(row["reserved"] for row in rows) > used
        lowest = min(row["tpm_level_min"] for row in rows)
        assert 100_000 - sum(row["reserved"] for row in rows) <= lowest < 100_000
        assert control.quota_usage("us." + MODEL) == {}
        assert control.clear_quota_usage() == len(rows)
        assert control.quota_usage() == {}
