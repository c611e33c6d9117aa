"""The emulator's batch inference jobs through boto3's real ``bedrock`` client."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config

from palette.devstack.emulator_client import EmulatorControl
from palette.devstack.stack import DevStack
from tests.integration.waiting import wait_until

if TYPE_CHECKING:
    from mypy_boto3_bedrock import BedrockClient

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]

MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"
ROLE = "arn:aws:iam::000000000000:role/batch"
ENDED = {"Completed", "PartiallyCompleted", "Failed", "Stopped"}


@pytest.fixture
def bedrock(devstack: DevStack) -> BedrockClient:
    return boto3.session.Session().client(
        "bedrock",
        endpoint_url=devstack.bedrock_endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
    )


@pytest.fixture
def control(devstack: DevStack) -> Iterator[EmulatorControl]:
    control = devstack.emulator_control()
    control.configure(batch_min_records=2)
    yield control
    control.reset()


def put_input(s3: Any, bucket: str, records: int, tag: str) -> str:
    """An input JSONL of ``records`` Converse entries; its s3 URI."""
    lines = [
        {
            "recordId": f"r{i}",
            "modelInput": {
                "messages": [{"role": "user", "content": [{"text": f"Tell {tag} {i}"}]}],
                "inferenceConfig": {"maxTokens": 20},
            },
        }
        for i in range(records)
    ]
    key = f"batch-test/{tag}/input.jsonl"
    s3.put_object(Bucket=bucket, Key=key, Body="".join(json.dumps(x) + "\n" for x in lines))
    return f"s3://{bucket}/{key}"


def create(bedrock: BedrockClient, input_uri: str, tag: str, **extra: Any) -> str:
    answer = bedrock.create_model_invocation_job(
        jobName=f"job-{tag}",
        roleArn=ROLE,
        modelId=MODEL,
        modelInvocationType="Converse",
        inputDataConfig={"s3InputDataConfig": {"s3Uri": input_uri}},
        outputDataConfig={"s3OutputDataConfig": {"s3Uri": input_uri.rsplit("/", 1)[0] + "/out/"}},
        tags=[{"key": "tag", "value": tag}],
        **extra,
    )
    return answer["jobArn"]


def ended(bedrock: BedrockClient, arn: str) -> Any:
    def check() -> Any:
        job = bedrock.get_model_invocation_job(jobIdentifier=arn)
        return job if job["status"] in ENDED else None

    return wait_until(check, what=f"batch job {arn} to end", timeout=30)


def output(s3: Any, bucket: str, tag: str, arn: str) -> tuple[list[Any], dict[str, int]]:
    folder = f"batch-test/{tag}/out/{arn.rsplit('/', 1)[1]}/"
    body = s3.get_object(Bucket=bucket, Key=folder + "input.jsonl.out")["Body"].read()
    manifest = json.loads(
        s3.get_object(Bucket=bucket, Key=folder + "manifest.json.out")["Body"].read()
    )
    return [json.loads(line) for line in body.decode().splitlines()], manifest


class TestBatchJobThroughBoto3:
    def test_runs_writes_output_and_manifest_and_bills_at_the_batch_rate(
        self, bedrock: BedrockClient, control: EmulatorControl, s3: Any, devstack: DevStack
    ) -> None:
        tag = uuid.uuid4().hex[:10]
        before = control.batch_jobs()["submissions"]
        arn = create(bedrock, put_input(s3, devstack.bucket, 5, tag), tag)
        assert arn.startswith("arn:aws:bedrock:us-east-1:000000000000:model-invocation-job/")
        job = ended(bedrock, arn)
        assert job["status"] == "Completed"
        assert job["modelInvocationType"] == "Converse"
        assert (job["totalRecordCount"], job["successRecordCount"]) == (5, 5)
        lines, manifest = output(s3, devstack.bucket, tag, arn)
        assert sorted(line["recordId"] for line in lines) == [f"r{i}" for i in range(5)]
        assert all(line["modelOutput"]["output"]["message"]["content"][0]["text"] for line in lines)
        billed = control.billing(tag=tag)
        assert {entry["service_tier"] for entry in billed} == {"batch"}
        assert manifest == {
            "totalRecordCount": 5,
            "processedRecordCount": 5,
            "successRecordCount": 5,
            "errorRecordCount": 0,
            "inputTokenCount": sum(e["input_tokens"] for e in billed),
            "outputTokenCount": sum(e["output_tokens"] for e in billed),
        }
        assert control.batch_jobs()["submissions"] == before + 1
        listed = bedrock.list_model_invocation_jobs(nameContains=f"job-{tag}")
        assert [s["jobArn"] for s in listed["invocationJobSummaries"]] == [arn]

    def test_failed_entries_carry_an_error_and_are_not_billed(
        self, bedrock: BedrockClient, control: EmulatorControl, s3: Any, devstack: DevStack
    ) -> None:
        control.configure(batch_error_rate=0.5, seed=3)
        tag = uuid.uuid4().hex[:10]
        arn = create(bedrock, put_input(s3, devstack.bucket, 40, tag), tag)
        job = ended(bedrock, arn)
        assert job["status"] == "PartiallyCompleted"
        lines, manifest = output(s3, devstack.bucket, tag, arn)
        failed = [line for line in lines if "error" in line]
        assert 0 < len(failed) < 40
        assert manifest["errorRecordCount"] == len(failed)
        assert len(control.billing(tag=tag)) == 40 - len(failed)

    def test_a_client_request_token_seen_before_creates_no_second_job(
        self, bedrock: BedrockClient, control: EmulatorControl, s3: Any, devstack: DevStack
    ) -> None:
        tag = uuid.uuid4().hex[:10]
        uri = put_input(s3, devstack.bucket, 3, tag)
        before = control.batch_jobs()["submissions"]
        first = create(bedrock, uri, tag, clientRequestToken=tag)
        assert create(bedrock, uri, tag, clientRequestToken=tag) == first
        assert control.batch_jobs()["submissions"] == before + 1

    def test_stop_ends_stopped_billing_only_what_ran(
        self, bedrock: BedrockClient, control: EmulatorControl, s3: Any, devstack: DevStack
    ) -> None:
        control.configure(batch_delay_ms=60_000)
        tag = uuid.uuid4().hex[:10]
        arn = create(bedrock, put_input(s3, devstack.bucket, 50, tag), tag)
        wait_until(
            lambda: bedrock.get_model_invocation_job(jobIdentifier=arn)["status"] == "InProgress",
            what="the job to run",
        )
        bedrock.stop_model_invocation_job(jobIdentifier=arn)
        job = ended(bedrock, arn)
        assert job["status"] == "Stopped"
        lines, manifest = output(s3, devstack.bucket, tag, arn)
        assert manifest["processedRecordCount"] == len(lines) < 50
        assert len(control.billing(tag=tag)) == manifest["successRecordCount"]
        with pytest.raises(bedrock.exceptions.ValidationException):
            bedrock.stop_model_invocation_job(jobIdentifier=arn)

    def test_status_errors_answer_internal_server_errors_counted_down(
        self, bedrock: BedrockClient, control: EmulatorControl, s3: Any, devstack: DevStack
    ) -> None:
        tag = uuid.uuid4().hex[:10]
        arn = create(bedrock, put_input(s3, devstack.bucket, 3, tag), tag)
        control.configure(batch_status_errors=2)
        for left in (1, 0):
            with pytest.raises(bedrock.exceptions.InternalServerException):
                bedrock.get_model_invocation_job(jobIdentifier=arn)
            assert control.config()["batch_status_errors"] == left
        assert ended(bedrock, arn)["status"] == "Completed"

    def test_too_few_records_fail_the_job_unbilled_and_unknown_ids_are_not_found(
        self, bedrock: BedrockClient, control: EmulatorControl, s3: Any, devstack: DevStack
    ) -> None:
        control.configure(batch_min_records=10)
        tag = uuid.uuid4().hex[:10]
        arn = create(bedrock, put_input(s3, devstack.bucket, 3, tag), tag)
        job = ended(bedrock, arn)
        assert job["status"] == "Failed"
        assert "between 10 and" in job["message"]
        assert control.billing(tag=tag) == []
        with pytest.raises(bedrock.exceptions.ResourceNotFoundException):
            bedrock.get_model_invocation_job(jobIdentifier="abcdefabcdef")
