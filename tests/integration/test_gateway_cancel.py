"""Cancel never deletes; DELETE honours If-Match: through the real gateway, broker and services."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from palette.devstack.stack import DevStack
from tests.integration.gateway_fixtures import MakeApi
from tests.integration.jobs import finished_job, model_latency, objects, problem, start
from tests.integration.waiting import wait_job_purged, wait_records_done

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def downloaded(api: Any, job_id: str) -> bytes:
    """The job's dataset, through its presigned download link."""
    link = api.http.get(f"/jobs/{job_id}/download")
    assert link.status_code == 200, link.text
    body = httpx.get(link.json()["url"], timeout=30)
    assert body.status_code == 200
    return body.content


class TestCancel:
    def test_a_running_job_stops_keeps_its_data_and_a_second_cancel_changes_nothing(
        self, make_api: MakeApi, devstack: DevStack, mongo: Any, s3: Any
    ) -> None:
        _, api = make_api()
        with model_latency(devstack, 50):
            _, _, job = start(api, num_records=2000, budget_usd="5")
            job_id = job["id"]
            wait_records_done(api, job_id, 10)
            first = api.http.post(f"/jobs/{job_id}/cancel")
            again = api.http.post(f"/jobs/{job_id}/cancel")
            final = api.wait(job_id, timeout=60)
        assert (first.status_code, again.status_code) == (202, 202)
        assert first.json()["outcome"] == "CANCEL_REQUESTED"
        assert first.json()["job"]["id"] == job_id
        assert first.headers["etag"] == first.json()["job"]["etag"]
        assert final["status"] == "CANCELLED"
        assert 10 <= final["export"]["records"] < 2000
        # Nothing was deleted: the job, its parts, its export and its ledger are all there.
        assert objects(s3, devstack.bucket, f"jobs/{job_id}/parts/") > 0
        assert mongo["ledgers"].find_one({"_id": job_id}) is not None
        assert mongo["jobs"].find_one({"_id": job_id})["status"] == "CANCELLED"
        assert downloaded(api, job_id)
        # Cancelling the cancelled job is answered with its state and changes nothing.
        third = api.http.post(f"/jobs/{job_id}/cancel")
        assert third.status_code == 202
        body = third.json()
        assert (body["outcome"], body["job"]["status"]) == ("ALREADY_ENDED", "CANCELLED")
        assert "changed nothing" in body["detail"]
        assert api.job(job_id)["etag"] == final["etag"]

    def test_a_finished_job_is_left_as_it_is(
        self, make_api: MakeApi, devstack: DevStack, mongo: Any, s3: Any
    ) -> None:
        _, api = make_api()
        job = finished_job(api, num_records=20)
        job_id = job["id"]
        response = api.http.post(f"/jobs/{job_id}/cancel")
        assert response.status_code == 202
        body = response.json()
        assert body["outcome"] == "ALREADY_ENDED"
        assert "COMPLETED" in body["detail"]
        assert "changed nothing" in body["detail"]
        assert body["job"]["status"] == "COMPLETED"
        assert body["job"]["etag"] == job["etag"]
        after = api.job(job_id)
        assert (after["status"], after["export"], after["etag"]) == (
            "COMPLETED",
            job["export"],
            job["etag"],
        )
        assert objects(s3, devstack.bucket, f"jobs/{job_id}/") > 0
        assert mongo["ledgers"].find_one({"_id": job_id}) is not None
        problem(api.http.post("/jobs/no-such-job/cancel"), 404)


class TestConditionalDelete:
    def test_a_delete_with_the_etag_of_the_running_job_deletes_nothing(
        self, make_api: MakeApi, devstack: DevStack, s3: Any
    ) -> None:
        _, api = make_api()
        _, _, job = start(api, num_records=20)
        job_id, seen = job["id"], job["etag"]  # read as it was created: QUEUED
        assert job["status"] == "QUEUED"
        final = api.wait(job_id, timeout=90)
        assert final["status"] == "COMPLETED"
        assert final["etag"] != seen
        assert api.http.get(f"/jobs/{job_id}").headers["etag"] == final["etag"]
        found = problem(api.http.delete(f"/jobs/{job_id}", headers={"If-Match": seen}), 412)
        assert found["etag"] == final["etag"]
        assert found["job_status"] == "COMPLETED"
        assert [e["field"] for e in found["errors"]] == ["If-Match"]
        assert api.job(job_id)["status"] == "COMPLETED"
        assert len(downloaded(api, job_id).splitlines()) == 20
        assert objects(s3, devstack.bucket, f"jobs/{job_id}/parts/") > 0

    def test_a_delete_with_the_current_etag_deletes_the_job(
        self, make_api: MakeApi, devstack: DevStack, mongo: Any, s3: Any
    ) -> None:
        _, api = make_api()
        job = finished_job(api, num_records=20)
        job_id = job["id"]
        current = api.http.get(f"/jobs/{job_id}").headers["etag"]
        assert current == job["etag"]
        problem(api.http.delete(f"/jobs/{job_id}", headers={"If-Match": "not a tag"}), 422)
        response = api.http.delete(f"/jobs/{job_id}", headers={"If-Match": current})
        assert response.status_code == 202
        wait_job_purged(api, mongo, s3, devstack.bucket, job_id)
