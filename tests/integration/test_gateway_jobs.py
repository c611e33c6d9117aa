"""``/jobs`` through the real gateway, broker, database and S3: create, list, read, remove."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from palette.devstack.stack import DevStack
from palette.gateway import outbox
from palette.gateway.job_views import new_job_document
from palette.gateway.schemas import CreateJob
from tests.conftest import SERVICE_SETTINGS
from tests.examples import SEEDS
from tests.integration.gateway_fixtures import MakeApi
from tests.integration.jobs import ONE_STEP, finished_job, job_body, model_latency, problem, start
from tests.integration.waiting import wait_job_purged, wait_records_done, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


class TestOutbox:
    """The gateway's outbox on the real database and broker (the session gateway's loop)."""

    def test_jobs_that_cannot_be_submitted_fail_and_no_longer_hold_back_a_good_one(
        self, make_api: MakeApi, mongo: Any
    ) -> None:
        user, api = make_api()
        template = api.create_template(ONE_STEP)
        seeds = api.upload_seeds(SEEDS)
        stored = mongo["templates"].find_one({"template_id": template["id"], "version": 1})
        old = datetime.now(UTC) - timedelta(hours=1)

        def document(created: datetime) -> dict[str, Any]:
            # A job whose SubmitJob was never published (the broker was down at its 201).
            request = CreateJob.model_validate(job_body(template["id"], seeds["key"]))
            return new_job_document(
                job_id=uuid.uuid4().hex,
                owner=user,
                request=request,
                template=stored,
                now=created,
            )

        # More than one outbox batch of jobs whose SubmitJob fails validation (no
        # steps), all older than a good job that is waiting for its publish too.
        bad = [
            document(old + timedelta(milliseconds=i)) | {"template": {"steps": []}}
            for i in range(outbox.BATCH + 20)
        ]
        good = document(old + timedelta(minutes=30))
        mongo["jobs"].insert_many([*bad, good])

        wait_until(
            lambda: api.job(good["_id"])["status"] != "QUEUED",
            what="the good job to leave QUEUED",
            timeout=60,
        )
        assert mongo["jobs"].find_one({"_id": good["_id"]})["submit_published"] is True
        assert api.wait(good["_id"], timeout=90)["status"] == "COMPLETED"
        failed = list(mongo["jobs"].find({"_id": {"$in": [job["_id"] for job in bad]}}))
        assert {(job["status"], job["submit_published"]) for job in failed} == {("FAILED", None)}
        seen = api.job(bad[-1]["_id"])
        assert seen["status"] == "FAILED"
        assert seen["error"].startswith("the job cannot be submitted: steps: Tuple should have"), (
            seen
        )
        assert seen["finished_at"] is not None


class TestCreate:
    def test_a_job_is_inserted_for_the_caller_and_submitted(
        self, make_api: MakeApi, mongo: Any
    ) -> None:
        user, api = make_api()
        template = api.create_template(ONE_STEP)
        seeds = api.upload_seeds(SEEDS)
        response = api.http.post("/jobs", json=job_body(template["id"], seeds["key"]))
        assert response.status_code == 201, response.text
        job = response.json()
        assert response.headers["location"] == f"/jobs/{job['id']}"
        assert (job["template_version"], job["num_records"], job["budget_usd"]) == (1, 20, "1")
        doc = mongo["jobs"].find_one({"_id": job["id"]})
        assert doc["owner"] == user
        assert doc["template"]["steps"][0]["prompt"] == ONE_STEP["steps"][0]["prompt"]
        wait_until(
            lambda: mongo["jobs"].find_one({"_id": job["id"]})["submit_published"],
            what="the job's SubmitJob to be published",
        )

    def test_invalid_requests_name_the_field_and_create_nothing(
        self, make_api: MakeApi, mongo: Any, tmp_path: Any
    ) -> None:
        user, api = make_api()
        _, other = make_api()
        template = api.create_template(ONE_STEP)
        seeds = api.upload_seeds(SEEDS)
        others_seeds = other.upload_seeds(SEEDS)
        (tmp_path / "bad.jsonl").write_text('{"product": "x"}\n{"other": 1}\n')
        lacking = api.upload_seeds(tmp_path / "bad.jsonl")
        good = job_body(template["id"], seeds["key"])
        cases = [
            ({**good, "num_records": 0}, 422, "num_records"),
            ({**good, "num_records": 1_000_001}, 422, "num_records"),
            ({**good, "budget_usd": "0"}, 422, "budget_usd"),
            ({**good, "budget_usd": "10000.01"}, 422, "budget_usd"),
            ({**good, "output_format": "xlsx"}, 422, "output_format"),
            ({**good, "template_id": "nope"}, 404, "template_id"),
            ({**good, "template_version": 7}, 404, "template_version"),
            ({**good, "seed_key": others_seeds["key"]}, 404, "seed_key"),
            ({**good, "seed_key": f"seed-data/{user}/none.jsonl"}, 404, "seed_key"),
            ({**good, "seed_key": lacking["key"]}, 422, "seed_key"),
        ]
        for body, status, field in cases:
            found = problem(api.http.post("/jobs", json=body), status)
            assert field in {e["field"] for e in found["errors"]}, (field, found)
        assert mongo["jobs"].count_documents({"owner": user}) == 0

    def test_another_users_public_template_may_be_used_and_keeps_its_version(
        self, make_api: MakeApi, mongo: Any
    ) -> None:
        _, alice = make_api()
        bob_id, bob = make_api()
        public = alice.create_template({**ONE_STEP, "name": "shared", "public": True})
        alice.http.put(f"/templates/{public['id']}", json={**ONE_STEP, "public": True})
        seeds = bob.upload_seeds(SEEDS)
        body = job_body(public["id"], seeds["key"], num_records=2, template_version=1)
        job = bob.submit_job(**body)
        assert (job["template_id"], job["template_version"]) == (public["id"], 1)
        assert mongo["jobs"].find_one({"_id": job["id"]})["owner"] == bob_id
        assert bob.wait(job["id"], timeout=60)["status"] == "COMPLETED"


class TestIdempotencyKey:
    def test_a_retried_create_returns_the_same_job(self, make_api: MakeApi, mongo: Any) -> None:
        user, api = make_api()
        template = api.create_template(ONE_STEP)
        seeds = api.upload_seeds(SEEDS)
        body = job_body(template["id"], seeds["key"], num_records=2)
        key = {"Idempotency-Key": f"create-{uuid.uuid4()}"}
        first = api.http.post("/jobs", json=body, headers=key)
        again = api.http.post("/jobs", json={**body, "budget_usd": "1.000"}, headers=key)
        assert (first.status_code, again.status_code) == (201, 200)
        assert first.json()["id"] == again.json()["id"]
        assert mongo["jobs"].count_documents({"owner": user}) == 1
        changed = api.http.post("/jobs", json={**body, "num_records": 3}, headers=key)
        assert problem(changed, 422)["errors"][0]["field"] == "Idempotency-Key"
        fresh = api.http.post("/jobs", json=body, headers={"Idempotency-Key": "another"})
        assert fresh.status_code == 201
        assert mongo["jobs"].count_documents({"owner": user}) == 2

    def test_concurrent_retries_make_one_job(self, make_api: MakeApi, mongo: Any) -> None:
        user, api = make_api()
        template = api.create_template(ONE_STEP)
        seeds = api.upload_seeds(SEEDS)
        body = job_body(template["id"], seeds["key"], num_records=2)
        key = {"Idempotency-Key": uuid.uuid4().hex}
        with ThreadPoolExecutor(6) as pool:
            answers = list(
                pool.map(lambda _: api.http.post("/jobs", json=body, headers=key), range(6))
            )
        assert sorted(a.status_code for a in answers) == [200] * 5 + [201]
        assert len({a.json()["id"] for a in answers}) == 1
        assert mongo["jobs"].count_documents({"owner": user}) == 1


class TestListAndRead:
    def test_jobs_come_newest_first_in_pages_and_filter_by_status(self, make_api: MakeApi) -> None:
        _, api = make_api()
        template, seeds, first = start(api, num_records=2)
        ids = [first["id"]] + [
            api.submit_job(**job_body(template["id"], seeds["key"], num_records=2))["id"]
            for _ in range(2)
        ]
        for job_id in ids:
            api.wait(job_id, timeout=60)
        page = api.http.get("/jobs", params={"limit": 2}).json()
        assert [j["id"] for j in page["items"]] == ids[::-1][:2]
        rest = api.http.get("/jobs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
        assert ([j["id"] for j in rest["items"]], rest["next_cursor"]) == ([ids[0]], None)
        done = api.http.get("/jobs", params=[("status", "COMPLETED"), ("status", "FAILED")])
        assert {j["id"] for j in done.json()["items"]} == set(ids)
        assert api.http.get("/jobs", params={"status": "RUNNING"}).json()["items"] == []
        problem(api.http.get("/jobs", params={"cursor": "garbage"}), 422)
        problem(api.http.get("/jobs", params={"limit": 0}), 422)
        problem(api.http.get("/jobs", params={"limit": 101}), 422)

    def test_a_job_reads_whole_configuration_progress_cost_and_times(
        self, make_api: MakeApi, mongo: Any
    ) -> None:
        _, api = make_api()
        job = finished_job(api, num_records=20)
        ledger = mongo["ledgers"].find_one({"_id": job["id"]})
        assert Decimal(job["cost_usd"]) == Decimal(ledger["spent"]) / 10**12 > 0
        assert Decimal(job["remaining_usd"]) == Decimal(job["budget_usd"]) - Decimal(
            job["cost_usd"]
        )
        assert (job["records_done"], job["progress_percent"], job["reserved_usd"]) == (
            20,
            100.0,
            "0",
        )
        assert job["created_at"] <= job["started_at"] <= job["finished_at"]
        assert job["export"]["records"] == 20
        assert job["error"] is None
        assert job["seed_count"] == 60
        assert job["partitions_in_flight"] == 0
        problem(api.http.get(f"/jobs/{uuid.uuid4().hex}"), 404)


class TestPartitionSize:
    def test_the_scheduler_decides_it_unless_the_job_names_one(
        self, make_api: MakeApi, mongo: Any
    ) -> None:
        size = int(SERVICE_SETTINGS["scheduler"]["PALETTE_SCHEDULER_PARTITION_SIZE"])
        _, api = make_api()
        template, seeds, default = start(api, num_records=2 * size)
        assert default["partition_size"] is None  # the gateway leaves it to the scheduler
        named = api.submit_job(
            **job_body(template["id"], seeds["key"], num_records=2 * size, partition_size=size // 2)
        )
        for job, expected in ((default, size), (named, size // 2)):
            final = api.wait(job["id"], timeout=90)
            assert final["status"] == "COMPLETED", final
            partitions = 2 * size // expected
            assert (final["partition_size"], final["partitions_total"]) == (expected, partitions)
            assert mongo["partitions"].count_documents({"job_id": job["id"]}) == partitions


class TestRemove:
    def test_a_running_job_is_cancelled_and_exports_what_it_made(
        self, make_api: MakeApi, devstack: DevStack
    ) -> None:
        _, api = make_api()
        with model_latency(devstack, 50):
            _, _, job = start(api, num_records=2000, budget_usd="5")
            wait_records_done(api, job["id"], 10)
            response = api.http.delete(f"/jobs/{job['id']}")
            assert response.status_code == 202
            final = api.wait(job["id"], timeout=60)
        assert final["status"] == "CANCELLED"
        assert 10 <= final["export"]["records"] < 2000

    def test_a_finished_job_is_deleted_with_its_objects_and_ledger(
        self, make_api: MakeApi, devstack: DevStack, mongo: Any, s3: Any
    ) -> None:
        _, api = make_api()
        job = finished_job(api, num_records=20)
        job_id = job["id"]
        prefix = f"jobs/{job_id}/"
        assert s3.list_objects_v2(Bucket=devstack.bucket, Prefix=prefix)["KeyCount"] > 0
        assert mongo["leases"].count_documents({"job_id": job_id}) > 0
        assert api.http.delete(f"/jobs/{job_id}").status_code == 202
        wait_job_purged(api, mongo, s3, devstack.bucket, job_id)
        assert mongo["leases"].count_documents({"job_id": job_id}) == 0
        assert mongo["partitions"].count_documents({"job_id": job_id}) == 0
        problem(api.http.delete(f"/jobs/{job_id}"), 404)
