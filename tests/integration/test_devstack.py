"""The dev stack for real: emulator through boto3, S3, the database, process control."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ConnectionClosedError, ReadTimeoutError
from pymongo import AsyncMongoClient

from palette.common.settings import CommonSettings
from palette.devstack.emulator_client import EmulatorControl
from palette.devstack.emulator_server import EmulatorServer, EmulatorSettings
from palette.devstack.services import ServiceProcess
from palette.devstack.stack import DevStack
from tests.integration.waiting import wait_until

if TYPE_CHECKING:
    from mypy_boto3_bedrock_runtime import BedrockRuntimeClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"


def bedrock(endpoint_url: str, **config: Any) -> BedrockRuntimeClient:
    """A bedrock-runtime client of the emulator at ``endpoint_url``, one attempt per call."""
    return boto3.session.Session().client(
        "bedrock-runtime",
        endpoint_url=endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, **config),
    )


def ask(client: BedrockRuntimeClient, model: str = MODEL, **extra: Any) -> Any:
    return client.converse(
        modelId=model,
        messages=[{"role": "user", "content": [{"text": f"Write about {uuid.uuid4()}"}]}],
        inferenceConfig={"maxTokens": 64},
        **extra,
    )


@pytest.fixture
def control(devstack: DevStack) -> Iterator[EmulatorControl]:
    control = devstack.emulator_control()
    yield control
    control.reset()


@pytest.fixture
def client(devstack: DevStack) -> BedrockRuntimeClient:
    return bedrock(devstack.bedrock_endpoint_url)


def billed(control: EmulatorControl, tag: str) -> list[dict[str, Any]]:
    return control.billing(tag=tag)


class TestConverseThroughBoto3:
    def test_answers_with_usage_and_bills_with_request_metadata(
        self, client: BedrockRuntimeClient, control: EmulatorControl
    ) -> None:
        tag = str(uuid.uuid4())
        response = ask(client, system=[{"text": "Be brief."}], requestMetadata={"tag": tag})
        usage = response["usage"]
        assert response["output"]["message"]["content"][0]["text"]
        assert response["stopReason"] in ("end_turn", "max_tokens")
        assert 1 <= usage["outputTokens"] <= 64
        assert usage["totalTokens"] == usage["inputTokens"] + usage["outputTokens"]
        assert response["metrics"]["latencyMs"] >= 0
        [entry] = billed(control, tag)
        assert entry["request_id"] == response["ResponseMetadata"]["RequestId"]
        assert entry["model_id"] == MODEL
        assert (entry["input_tokens"], entry["output_tokens"]) == (
            usage["inputTokens"],
            usage["outputTokens"],
        )
        assert entry["at"]

    def test_unknown_model_is_a_validation_error_and_not_billed(
        self, client: BedrockRuntimeClient, control: EmulatorControl
    ) -> None:
        tag = str(uuid.uuid4())
        with pytest.raises(client.exceptions.ValidationException, match="model identifier"):
            ask(client, model="acme.unknown-model-v1:0", requestMetadata={"tag": tag})
        assert billed(control, tag) == []

    @pytest.mark.parametrize(
        "fault", ["ThrottlingException", "ServiceUnavailableException", "ModelTimeoutException"]
    )
    def test_injected_fault_raises_its_boto3_exception_unbilled(
        self, client: BedrockRuntimeClient, control: EmulatorControl, fault: str
    ) -> None:
        tag = str(uuid.uuid4())
        control.configure(script=[fault])
        with pytest.raises(getattr(client.exceptions, fault)):
            ask(client, requestMetadata={"tag": tag})
        assert billed(control, tag) == []
        ask(client)  # the script is used up: the next call succeeds

    def test_fault_rates_with_a_seed_are_reproducible(
        self, client: BedrockRuntimeClient, control: EmulatorControl
    ) -> None:
        def run() -> list[str]:
            control.configure(throttle_rate=0.3, unavailable_rate=0.2, seed=11)
            outcomes = []
            for _ in range(20):
                try:
                    ask(client)
                    outcomes.append("ok")
                except client.exceptions.ClientError as exc:
                    outcomes.append(exc.response["Error"]["Code"])
            return outcomes

        first = run()
        assert first == run()
        assert {"ok", "ThrottlingException", "ServiceUnavailableException"} <= set(first)

    @pytest.mark.parametrize(
        ("mode", "error"),
        [("error", None), ("drop", ConnectionClosedError), ("hang", ReadTimeoutError)],
    )
    def test_billed_timeout_bills_but_never_answers(
        self, devstack: DevStack, control: EmulatorControl, mode: str, error: type | None
    ) -> None:
        client = bedrock(devstack.bedrock_endpoint_url, read_timeout=1)
        tag = str(uuid.uuid4())
        control.configure(script=["billed_timeout"], billed_timeout_mode=mode, hang_ms=3000)
        expected = error or client.exceptions.ModelTimeoutException
        with pytest.raises(expected):
            ask(client, requestMetadata={"tag": tag})
        assert len(billed(control, tag)) == 1

    def test_latency_does_not_serialise_concurrent_calls(
        self, devstack: DevStack, control: EmulatorControl
    ) -> None:
        control.configure(latency_ms=200)
        client = bedrock(devstack.bedrock_endpoint_url, max_pool_connections=64)
        started = time.monotonic()
        with ThreadPoolExecutor(64) as pool:
            results = list(pool.map(lambda _: ask(client), range(128)))
        elapsed = time.monotonic() - started
        assert len(results) == 128
        assert all(r["metrics"]["latencyMs"] >= 200 for r in results)
        assert elapsed < 4.0  # serialised it would take 25 s

    def test_billing_can_be_filtered_summarised_and_cleared(
        self, client: BedrockRuntimeClient, control: EmulatorControl
    ) -> None:
        tag = str(uuid.uuid4())
        answers = [ask(client, requestMetadata={"tag": tag, "step": s}) for s in ("a", "b")]
        assert [e["request_metadata"]["step"] for e in control.billing(tag=tag)] == ["a", "b"]
        assert len(control.billing(tag=tag, step="b")) == 1
        summary = control.billing_summary(tag=tag)
        assert summary["calls"] == 2
        assert summary["output_tokens"] == sum(a["usage"]["outputTokens"] for a in answers)
        assert summary["by_model"][MODEL]["calls"] == 2
        control.clear_billing()
        assert control.billing() == []


class TestInProcessEmulator:
    def test_serves_boto3_and_appends_billing_jsonl(self, tmp_path: Path) -> None:
        billing_file = tmp_path / "billing.jsonl"
        settings = EmulatorSettings(port=0, billing_file=str(billing_file), seed=5)
        with EmulatorServer(settings) as server:
            client = boto3.session.Session().client(
                "bedrock-runtime",
                endpoint_url=server.url,
                region_name="us-east-1",
                aws_access_key_id="testing",
                aws_secret_access_key="testing",
            )
            response = ask(client, requestMetadata={"tag": "file"})
        [line] = billing_file.read_text().splitlines()
        entry = json.loads(line)
        assert entry["request_id"] == response["ResponseMetadata"]["RequestId"]
        assert entry["request_metadata"] == {"tag": "file"}

    def test_serves_chunked_and_large_bodies_and_keeps_connections_alive(self) -> None:
        path = f"/model/{MODEL}/converse"
        call = {"messages": [{"role": "user", "content": [{"text": "Write a word."}]}]}
        large = {"messages": [{"role": "user", "content": [{"text": "word " * 600_000}]}]}
        with (
            EmulatorServer(EmulatorSettings(port=0)) as server,
            httpx.Client(base_url=server.url) as http,
        ):
            chunks = iter([json.dumps(call).encode()[:10], json.dumps(call).encode()[10:]])
            chunked = http.post(path, content=chunks)  # no length: sent chunked
            assert chunked.request.headers["transfer-encoding"] == "chunked"
            assert chunked.status_code == 200, chunked.text
            assert chunked.json()["usage"]["outputTokens"] >= 1
            big = http.post(path, json=large)  # 3 MB
            assert big.status_code == 200, big.text
            assert big.json()["usage"]["inputTokens"] >= 600_000
            stats = [http.get("/_emulator/stats") for _ in range(3)]
            assert [r.json()["requests"] for r in stats] == [2, 2, 2]
            streams = {id(r.extensions["network_stream"]) for r in [chunked, big, *stats]}
            assert len(streams) == 1  # every request on one kept-alive connection


class TestStores:
    def test_s3_bucket_exists_and_round_trips(self, devstack: DevStack) -> None:
        settings = CommonSettings.model_validate(devstack.env())
        s3 = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.aws_region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        key = f"tests/{uuid.uuid4()}.json"
        s3.put_object(Bucket=settings.s3_bucket, Key=key, Body=b'{"ok": true}')
        assert s3.get_object(Bucket=settings.s3_bucket, Key=key)["Body"].read() == b'{"ok": true}'

    async def test_async_mongo_inserts_and_finds(self, devstack: DevStack) -> None:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(devstack.mongo_url)
        try:
            collection = client[devstack.mongo_db][f"t_{uuid.uuid4().hex}"]
            await collection.insert_one({"_id": "a", "n": 1})
            assert await collection.find_one({"_id": "a"}) == {"_id": "a", "n": 1}
        finally:
            await client.close()

    @pytest.mark.timeout(120)
    async def test_database_restart_keeps_data_on_the_same_port(self, devstack: DevStack) -> None:
        name = f"t_{uuid.uuid4().hex}"
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            devstack.mongo_url, serverSelectionTimeoutMS=20_000
        )
        try:
            await client[devstack.mongo_db][name].insert_one({"_id": "kept"})
            devstack.restart_database(kill=True)
            assert await client[devstack.mongo_db][name].find_one({"_id": "kept"}) is not None
        finally:
            await client.close()

    def test_env_configures_common_settings(self, devstack: DevStack) -> None:
        env = devstack.env()
        settings = CommonSettings.model_validate(env)
        assert settings.mongo_url == devstack.mongo_url
        assert settings.s3_endpoint_url == devstack.s3_endpoint_url
        assert env["PALETTE_BEDROCK_ENDPOINT_URL"] == devstack.bedrock_endpoint_url
        assert EmulatorControl(env["PALETTE_EMULATOR_URL"]).health()["status"] == "ok"


FAKE_WORKER = (
    'import sys, time; print(\'{"event": "service_started"}\', file=sys.stderr, flush=True);'
    " time.sleep(120)"
)
FAKE_GATEWAY = (
    "import http.server, os\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200 if self.path == '/health' else 404); self.end_headers()\n"
    "http.server.HTTPServer(('127.0.0.1', int(os.environ['PALETTE_GATEWAY_PORT'])), H)"
    ".serve_forever()\n"
)


class TestServiceProcess:
    def test_worker_is_ready_on_its_start_line_and_restarts(self, tmp_path: Path) -> None:
        worker = ServiceProcess(
            "scheduler", {}, tmp_path, command=[sys.executable, "-c", FAKE_WORKER]
        )
        worker.start()
        try:
            worker.wait_ready(timeout=20)
            first = worker.pid
            worker.kill(signal.SIGKILL)
            assert not worker.alive()
            worker.restart()
            assert worker.alive()
            assert worker.pid != first
            assert worker.log_text().count('{"event": "service_started"}\n') == 2
        finally:
            worker.stop()
        assert not worker.alive()

    def test_gateway_is_ready_when_health_answers(self, tmp_path: Path) -> None:
        gateway = ServiceProcess(
            "gateway", {}, tmp_path, command=[sys.executable, "-c", FAKE_GATEWAY]
        )
        gateway.start()
        try:
            gateway.wait_ready(timeout=20)
            assert gateway.url.startswith("http://127.0.0.1:")
        finally:
            assert gateway.stop() is not None


class TestDevstackCommand:
    @pytest.mark.timeout(120)
    def test_up_writes_env_and_stops_on_sigterm(self, tmp_path: Path) -> None:
        state = tmp_path / "state"
        process = subprocess.Popen(
            [sys.executable, "-m", "palette.devstack", "up", "--state-dir", str(state)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:

            def env_written() -> bool:
                assert process.poll() is None, process.communicate()[1].decode()
                return (state / "env").exists()

            wait_until(env_written, what=f"{state / 'env'} to be written", timeout=60, interval=0.1)
            env = dict(
                line.split("=", 1) for line in (state / "env").read_text().splitlines() if line
            )
            health = EmulatorControl(env["PALETTE_EMULATOR_URL"]).health()
            assert json.dumps(health)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
            assert not (state / "env").exists()
        finally:
            if process.poll() is None:
                process.terminate()  # lets it stop its servers
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
