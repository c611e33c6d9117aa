"""Isolation: another user's job, template version or seed file answers 404 on every route.

Alice owns a private template (two versions), a seed file, a finished job and
a running one. Bob tries every route on them: each answer is the 404 a missing
resource gets (the same problem but for the id), and nothing of Alice's changes.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from palette.devstack.stack import DevStack
from tests.integration.gateway_fixtures import MakeApi
from tests.integration.jobs import ONE_STEP, finished_job, job_body, problem

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SEED = {"product": "x"}


def attempts(job: str, tpl: str, key: str, own: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(method, path, request options) of every route that names one of the resources."""
    return [
        ("GET", f"/jobs/{job}", {}),
        ("DELETE", f"/jobs/{job}", {}),
        ("DELETE", f"/jobs/{job}", {"headers": {"If-Match": "*"}}),
        ("POST", f"/jobs/{job}/cancel", {}),
        ("GET", f"/jobs/{job}/dashboard", {}),
        ("GET", f"/jobs/{job}/events", {}),
        ("GET", f"/jobs/{job}/download", {}),
        ("GET", f"/jobs/{job}/download", {"params": {"format": "csv"}}),
        ("GET", f"/templates/{tpl}", {}),
        ("GET", f"/templates/{tpl}", {"params": {"version": 1}}),
        ("PUT", f"/templates/{tpl}", {"json": ONE_STEP}),
        ("DELETE", f"/templates/{tpl}", {}),
        ("GET", f"/templates/{tpl}/versions", {}),
        ("POST", f"/templates/{tpl}/fork", {}),
        ("POST", f"/templates/{tpl}/preview", {"json": {"seed": SEED}}),
        ("POST", f"/templates/{tpl}/preview", {"params": {"run": "true"}, "json": {"seed": SEED}}),
        ("GET", f"/templates/{tpl}/yaml", {}),
        ("POST", "/seed-data/validate", {"json": {"key": key, "template_id": tpl}}),
        ("POST", "/seed-data/validate", {"json": {"key": key, "template_id": own}}),
    ]


def normalized(body: dict[str, Any], *ids: str) -> dict[str, Any]:
    """The problem with the resource ids replaced by placeholders."""

    def anonymous(text: str) -> str:
        for n, value in enumerate(ids):
            text = text.replace(value, f"<id{n}>")
        return text

    errors = [{**e, "problem": anonymous(e["problem"])} for e in body["errors"]]
    return {
        **body,
        "detail": anonymous(body["detail"]),
        "instance": anonymous(body["instance"]),
        "errors": errors,
    }


class TestTwoUsers:
    def test_every_route_answers_404_as_for_a_missing_resource_and_changes_nothing(
        self, make_api: MakeApi, devstack: DevStack, mongo: Any, s3: Any
    ) -> None:
        alice_id, alice = make_api()
        bob_id, bob = make_api()
        done = finished_job(alice, num_records=5)
        template = alice.http.get(f"/templates/{done['template_id']}").json()
        alice.http.put(f"/templates/{template['id']}", json=ONE_STEP)
        key = done["seed_key"]
        running = alice.submit_job(
            **job_body(template["id"], key, num_records=3000, budget_usd="5")
        )
        bob_template = bob.create_template(ONE_STEP)
        before = snapshot(mongo, alice_id)
        objects_before = keys(s3, devstack.bucket, f"jobs/{done['id']}/")

        for job_id in (done["id"], running["id"]):
            ghost_job, ghost_tpl = uuid.uuid4().hex, uuid.uuid4().hex
            ghost_key = f"seed-data/{alice_id}/ghost.jsonl"
            theirs = attempts(job_id, template["id"], key, bob_template["id"])
            missing = attempts(ghost_job, ghost_tpl, ghost_key, bob_template["id"])
            for (method, path, options), (_, ghost_path, ghost_options) in zip(
                theirs, missing, strict=True
            ):
                refused = problem(bob.http.request(method, path, **options), 404)
                absent = problem(bob.http.request(method, ghost_path, **ghost_options), 404)
                assert normalized(refused, job_id, template["id"], key) == normalized(
                    absent, ghost_job, ghost_tpl, ghost_key
                ), (method, path)

        # Bob cannot use Alice's private template or seed file for a job of his.
        with_template = job_body(template["id"], key)
        assert problem(bob.http.post("/jobs", json=with_template), 404)["errors"][0]["field"] == (
            "template_id"
        )
        with_seed = job_body(bob_template["id"], key)
        assert problem(bob.http.post("/jobs", json=with_seed), 404)["errors"][0]["field"] == (
            "seed_key"
        )
        # Lists hold only what is Bob's or public; uploads land under Bob's prefix.
        assert bob.http.get("/jobs").json()["items"] == []
        listed = {
            t["id"] for t in bob.http.get("/templates", params={"limit": 100}).json()["items"]
        }
        assert template["id"] not in listed
        ticket = bob.http.post(
            "/seed-data/uploads", json={"filename": f"../{alice_id}/seeds.jsonl", "bytes": 10}
        ).json()
        assert ticket["key"] == f"seed-data/{bob_id}/seeds.jsonl"

        assert snapshot(mongo, alice_id) == before
        assert s3.head_object(Bucket=devstack.bucket, Key=key)["ContentLength"] > 0
        # No snapshot was written for Bob, no copy or fork of Alice's made, no model called.
        assert keys(s3, devstack.bucket, f"jobs/{done['id']}/") == objects_before
        bobs = [
            (t["template_id"], t["version"]) for t in mongo["templates"].find({"owner": bob_id})
        ]
        assert bobs == [(bob_template["id"], 1)]
        assert mongo["jobs"].count_documents({"owner": bob_id}) == 0
        assert devstack.emulator_control().billing(owner=bob_id) == []
        assert alice.job(running["id"])["status"] in ("QUEUED", "RUNNING")
        assert alice.http.delete(f"/jobs/{running['id']}").status_code == 202
        alice.wait(running["id"], timeout=60, exported=False)


def snapshot(mongo: Any, owner: str) -> dict[str, Any]:
    """What of the owner's could change: template versions, jobs and their state."""
    templates = sorted(
        (t["_id"], t["name"], t["public"], t["steps"][0]["prompt"])
        for t in mongo["templates"].find({"owner": owner})
    )
    jobs = sorted(
        (j["_id"], j["status"] in ("QUEUED", "RUNNING"), j["template_version"], j["num_records"])
        for j in mongo["jobs"].find({"owner": owner})
    )
    return {"templates": templates, "jobs": jobs}


def keys(s3: Any, bucket: str, prefix: str) -> list[str]:
    """The S3 keys under a prefix."""
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in listed.get("Contents", []))
