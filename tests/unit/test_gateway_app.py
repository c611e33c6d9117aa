"""The gateway's HTTP behaviour in-process, over in-memory fakes (no network)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from litestar.testing import TestClient

from palette.common.messages import CancelJob, DeleteJob, JobStatusChanged, SubmitJob
from palette.gateway import outbox
from palette.gateway.app import create_app
from palette.gateway.bearer_tokens import mint
from palette.gateway.settings import GatewaySettings
from tests.unit.gateway_fakes import InMemoryWorld

pytestmark = pytest.mark.unit

SECRET = "unit-test-secret-unit-test-secret-unit-test-secret"
MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"


class World(InMemoryWorld):
    def __init__(self) -> None:
        super().__init__()
        self.settings = GatewaySettings(
            jwt_secret=SECRET, max_body_bytes=4096, outbox_interval_seconds=3600
        )


def auth(sub: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint(sub, SECRET)}"}


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def client(world: World) -> Iterator[TestClient[Any]]:
    app = create_app(world.settings, runtime_factory=world.runtime)
    with TestClient(app) as test_client:
        yield test_client


def _problem(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail", "errors"} <= set(body)
    assert body["status"] == status
    return body


def _template(client: TestClient[Any], sub: str = "alice", public: bool = False) -> str:
    body = {
        "name": "qa",
        "public": public,
        "steps": [{"id": "q", "model": MODEL, "prompt": "About {{ topic }}"}],
    }
    response = client.post("/templates", json=body, headers=auth(sub))
    assert response.status_code == 201, response.text
    template_id: str = response.json()["id"]
    return template_id


def _seed(
    client: TestClient[Any], content: bytes, name: str = "s.jsonl", sub: str = "alice"
) -> str:
    response = client.post(f"/seed-data?filename={name}", content=content, headers=auth(sub))
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


def _job_body(template_id: str, seed_key: str, **extra: Any) -> dict[str, Any]:
    return {
        "template_id": template_id,
        "seed_key": seed_key,
        "num_records": 10,
        "budget_usd": "2.50",
        "output_format": "jsonl",
        **extra,
    }


def _alices_job(client: TestClient[Any]) -> str:
    """A job of alice's (template, seed file, job), by id."""
    seed_key = _seed(client, b'{"topic": "a"}\n')
    response = client.post(
        "/jobs", json=_job_body(_template(client), seed_key), headers=auth("alice")
    )
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    return job_id


class TestAuthentication:
    def test_health_needs_no_token(self, client: TestClient[Any]) -> None:
        assert client.get("/health").json() == {"status": "ok", "checks": {}}

    def test_missing_token_is_a_401_problem_with_a_challenge(self, client: TestClient[Any]) -> None:
        response = client.get("/jobs/x")
        body = _problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert body["errors"][0]["field"] == "Authorization"

    def test_invalid_token_is_a_401_problem(self, client: TestClient[Any]) -> None:
        response = client.get("/jobs/x", headers={"Authorization": "Bearer nope"})
        _problem(response, 401)
        assert 'error="invalid_token"' in response.headers["www-authenticate"]

    def test_unknown_route_is_a_404_problem(self, client: TestClient[Any]) -> None:
        _problem(client.get("/nowhere", headers=auth("alice")), 404)


class TestReadiness:
    def test_ready_when_broker_and_database_answer(self, client: TestClient[Any]) -> None:
        assert client.get("/ready").json()["status"] == "ready"

    def test_not_ready_names_the_broker(self, client: TestClient[Any], world: World) -> None:
        world.publisher.down = True
        body = _problem(client.get("/ready"), 503)
        assert body["errors"] == [{"field": "broker", "problem": "not connected"}]

    def test_not_ready_names_the_database(self, client: TestClient[Any], world: World) -> None:
        world.repository.down = True
        body = _problem(client.get("/ready"), 503)
        assert [e["field"] for e in body["errors"]] == ["database"]


class TestTemplates:
    def test_created_template_reports_its_requirements(self, client: TestClient[Any]) -> None:
        body = {"name": "qa", "steps": [{"id": "q", "model": MODEL, "prompt": "{{ a.b }} {{ c }}"}]}
        response = client.post("/templates", json=body, headers=auth("alice"))
        assert response.status_code == 201
        created = response.json()
        assert (created["version"], created["schema_requirements"]) == (1, ["a.b", "c"])

    def test_invalid_template_writes_nothing(self, client: TestClient[Any], world: World) -> None:
        body = {"name": "qa", "steps": [{"id": "q", "model": "acme.x", "prompt": "x"}]}
        problem = _problem(client.post("/templates", json=body, headers=auth("alice")), 422)
        assert problem["errors"][0]["field"] == "steps[0].model"
        assert world.repository.templates == {}

    def test_private_template_is_hidden_from_others(self, client: TestClient[Any]) -> None:
        template_id = _template(client)
        _problem(client.get(f"/templates/{template_id}", headers=auth("bob")), 404)
        public_id = _template(client, public=True)
        assert client.get(f"/templates/{public_id}", headers=auth("bob")).status_code == 200


class TestSeedUpload:
    def test_raw_body_lands_under_the_callers_prefix(
        self, client: TestClient[Any], world: World
    ) -> None:
        response = client.post(
            "/seed-data?filename=../x/s.csv", content=b"topic\na\nb\n", headers=auth("alice")
        )
        assert response.json() == {
            "key": "seed-data/alice/s.csv",
            "records": 2,
            "format": "csv",
            "bytes": 10,
        }
        assert world.seeds.objects["seed-data/alice/s.csv"] == b"topic\na\nb\n"

    def test_multipart_file_field_is_accepted(self, client: TestClient[Any], world: World) -> None:
        files = {"file": ("m.json", b'[{"topic": 1}]', "application/json")}
        response = client.post("/seed-data", files=files, headers=auth("alice"))
        assert response.status_code == 201, response.text
        assert response.json()["key"] == "seed-data/alice/m.json"

    def test_multipart_without_a_file_field_is_422(self, client: TestClient[Any]) -> None:
        response = client.post(
            "/seed-data", files={"other": ("x.csv", b"a\n1\n")}, headers=auth("alice")
        )
        assert _problem(response, 422)["errors"][0]["field"] == "file"

    def test_unparsable_file_is_422_and_not_stored(
        self, client: TestClient[Any], world: World
    ) -> None:
        response = client.post(
            "/seed-data?filename=s.jsonl", content=b'{"a": 1}\n[1]\n', headers=auth("alice")
        )
        problem = _problem(response, 422)
        assert problem["errors"][0] | {"problem": ""} == {
            "field": "file",
            "problem": "",
            "line": 2,
            "record": 2,
        }
        assert world.seeds.objects == {}

    def test_too_large_body_is_413(self, client: TestClient[Any], world: World) -> None:
        response = client.post(
            "/seed-data?filename=s.jsonl", content=b'{"a": 1}\n' * 1000, headers=auth("alice")
        )
        _problem(response, 413)
        assert world.seeds.objects == {}


class TestJobs:
    def test_job_is_inserted_then_submitted(self, client: TestClient[Any], world: World) -> None:
        template_id = _template(client)
        seed_key = _seed(client, b'{"topic": "a"}\n')
        response = client.post(
            "/jobs", json=_job_body(template_id, seed_key), headers=auth("alice")
        )
        assert response.status_code == 201, response.text
        job = response.json()
        assert (job["status"], job["budget_usd"], job["cost_usd"]) == ("QUEUED", "2.5", "0")
        stored = world.repository.jobs[job["id"]]
        assert stored["submit_published"] is True
        assert stored["budget_picos"] == 2_500_000_000_000
        [message] = world.publisher.sent
        assert isinstance(message, SubmitJob)
        assert (message.job_id, message.message_id) == (job["id"], f"submit-{job['id']}")

    def test_broker_down_still_accepts_and_the_outbox_publishes_later(
        self, client: TestClient[Any], world: World
    ) -> None:
        template_id = _template(client)
        seed_key = _seed(client, b'{"topic": "a"}\n')
        world.publisher.down = True
        response = client.post(
            "/jobs", json=_job_body(template_id, seed_key), headers=auth("alice")
        )
        assert response.status_code == 201
        job_id = response.json()["id"]
        assert world.repository.jobs[job_id]["submit_published"] is False
        world.publisher.down = False
        sent = asyncio.run(outbox.flush(world.repository, world.publisher, -1.0))
        assert sent == 1
        assert world.repository.jobs[job_id]["submit_published"] is True
        assert world.publisher.sent[0].message_id == f"submit-{job_id}"

    def test_the_outbox_fails_jobs_it_cannot_submit_and_still_publishes_the_good_one(
        self, client: TestClient[Any], world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        template_id = _template(client)
        seed_key = _seed(client, b'{"topic": "a"}\n')
        world.publisher.down = True
        body = _job_body(template_id, seed_key)
        ids = [client.post("/jobs", json=body, headers=auth("alice")).json()["id"] for _ in "abc"]
        world.publisher.down = False
        *bad, good = ids
        world.repository.jobs[bad[0]]["num_records"] = 0
        world.repository.jobs[bad[1]]["template"] = {"steps": []}
        monkeypatch.setattr(outbox, "BATCH", 1)  # each bad job fills a batch of its own
        sent = [asyncio.run(outbox.flush(world.repository, world.publisher, -1.0)) for _ in ids]
        assert sent == [0, 0, 1]
        errors = [
            "the job cannot be submitted: num_records: Input should be greater than or equal to 1",
            "the job cannot be submitted: steps: Tuple should have at least 1 item after"
            " validation, not 0",
        ]
        assert [world.repository.jobs[job_id]["error"] for job_id in bad] == errors
        changed = [m for m in world.publisher.sent if isinstance(m, JobStatusChanged)]
        assert [(m.job_id, m.status, m.previous, m.reason) for m in changed] == [
            (job_id, "FAILED", "QUEUED", error) for job_id, error in zip(bad, errors, strict=True)
        ]
        [submitted] = [m for m in world.publisher.sent if isinstance(m, SubmitJob)]
        assert submitted.job_id == good
        view = client.get(f"/jobs/{bad[0]}", headers=auth("alice")).json()
        assert (view["status"], view["error"]) == ("FAILED", errors[0])

    def test_seed_missing_fields_is_422_naming_the_record(
        self, client: TestClient[Any], world: World
    ) -> None:
        template_id = _template(client)
        seed_key = _seed(client, b'{"topic": "a"}\n{"other": 1}\n')
        problem = _problem(
            client.post("/jobs", json=_job_body(template_id, seed_key), headers=auth("alice")), 422
        )
        assert problem["errors"][0]["field"] == "seed_key"
        assert (problem["errors"][0]["record"], problem["errors"][0]["missing"]) == (2, ["topic"])
        assert world.repository.jobs == {}

    def test_someone_elses_seed_looks_missing(self, client: TestClient[Any], world: World) -> None:
        template_id = _template(client, public=True)
        seed_key = _seed(client, b'{"topic": "a"}\n', sub="bob")
        problem = _problem(
            client.post("/jobs", json=_job_body(template_id, seed_key), headers=auth("alice")), 404
        )
        assert problem["errors"][0]["field"] == "seed_key"

    def test_bad_input_names_each_field(self, client: TestClient[Any], world: World) -> None:
        body = _job_body("t", "k", num_records=0, budget_usd=0, extra=1)
        problem = _problem(client.post("/jobs", json=body, headers=auth("alice")), 422)
        assert {e["field"] for e in problem["errors"]} == {"num_records", "budget_usd", "extra"}
        problem = _problem(
            client.post(
                "/jobs", json=_job_body("t", "k", budget_usd="10000.01"), headers=auth("alice")
            ),
            422,
        )
        assert problem["errors"][0]["field"] == "budget_usd"
        assert world.repository.jobs == {}

    def test_other_users_job_is_404_and_cancel_publishes(
        self, client: TestClient[Any], world: World
    ) -> None:
        job_id = _alices_job(client)
        world.repository.ledger_docs[job_id] = {
            "_id": job_id,
            "spent": 1_250_000_000_000,
            "reserved": 0,
        }
        assert client.get(f"/jobs/{job_id}", headers=auth("alice")).json()["cost_usd"] == "1.25"
        _problem(client.get(f"/jobs/{job_id}", headers=auth("bob")), 404)
        _problem(client.delete(f"/jobs/{job_id}", headers=auth("bob")), 404)
        assert client.delete(f"/jobs/{job_id}", headers=auth("alice")).status_code == 202
        assert isinstance(world.publisher.sent[-1], CancelJob)
        # A finished job is deleted once its export is written; 409 while it is pending.
        world.repository.jobs[job_id].update(status="COMPLETED", partitions_total=1)
        world.repository.jobs[job_id]["export"] = {"status": "PENDING"}
        _problem(client.delete(f"/jobs/{job_id}", headers=auth("alice")), 409)
        world.repository.jobs[job_id]["export"] = {"status": "DONE", "key": "k", "bytes": 1}
        assert client.delete(f"/jobs/{job_id}", headers=auth("alice")).status_code == 202
        assert isinstance(world.publisher.sent[-1], DeleteJob)

    def test_cancel_never_deletes_and_delete_honours_if_match(
        self, client: TestClient[Any], world: World
    ) -> None:
        job_id = _alices_job(client)
        read = client.get(f"/jobs/{job_id}", headers=auth("alice"))
        running_tag = read.headers["etag"]
        assert read.json()["etag"] == running_tag
        _problem(client.post(f"/jobs/{job_id}/cancel", headers=auth("bob")), 404)
        sent = len(world.publisher.sent)
        answer = client.post(f"/jobs/{job_id}/cancel", headers=auth("alice"))
        assert answer.status_code == 202
        assert answer.json()["outcome"] == "CANCEL_REQUESTED"
        assert isinstance(world.publisher.sent[-1], CancelJob)
        # The job ends before a DELETE meant for the running job arrives.
        world.repository.jobs[job_id].update(status="CANCELLED", partitions_total=1)
        world.repository.jobs[job_id]["export"] = {"status": "DONE", "key": "k", "bytes": 1}
        sent = len(world.publisher.sent)
        stale = {**auth("alice"), "If-Match": running_tag}
        problem = _problem(client.delete(f"/jobs/{job_id}", headers=stale), 412)
        assert problem["errors"][0]["field"] == "If-Match"
        assert problem["etag"] != running_tag
        bad = {**auth("alice"), "If-Match": "no quotes"}
        assert (
            _problem(client.delete(f"/jobs/{job_id}", headers=bad), 422)["errors"][0]["field"]
            == "If-Match"
        )
        again = client.post(f"/jobs/{job_id}/cancel", headers=auth("alice"))
        assert again.status_code == 202
        assert (again.json()["outcome"], again.json()["job"]["status"]) == (
            "ALREADY_ENDED",
            "CANCELLED",
        )
        assert "changed nothing" in again.json()["detail"]
        assert len(world.publisher.sent) == sent  # neither published anything
        current = {**auth("alice"), "If-Match": problem["etag"]}
        assert client.delete(f"/jobs/{job_id}", headers=current).status_code == 202
        assert isinstance(world.publisher.sent[-1], DeleteJob)
