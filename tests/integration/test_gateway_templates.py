"""``/templates`` through the real gateway: versions, listing, forks, YAML and deletion."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from palette.gateway.controllers.templates import VERSION_ATTEMPTS
from tests.integration.gateway_fixtures import MakeApi
from tests.integration.jobs import HAIKU, MICRO, ONE_STEP, TWO_STEPS, problem, start

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def step(**changes: Any) -> dict[str, Any]:
    return {"id": "q", "model": MICRO, "prompt": "About {{ topic }}", **changes}


class TestCreateValidation:
    @pytest.mark.parametrize(
        ("steps", "field"),
        [
            ([step(prompt="{{ unclosed ")], "steps[0].prompt"),
            ([step(), step()], "steps[1].id"),
            ([step(model="acme.gpt-9")], "steps[0].model"),
            ([step(prompt="{{ steps.later.output }}")], "steps[0].prompt"),
            ([step(system="{% for %}")], "steps[0].system"),
            ([step(id=f"s{i}") for i in range(11)], "steps"),
            ([], "steps"),
        ],
        ids=["syntax", "duplicate", "unpriced", "forward-ref", "bad-tag", "11", "0"],
    )
    def test_each_invalid_template_is_refused_naming_the_field(
        self, make_api: MakeApi, mongo: Any, steps: list[dict[str, Any]], field: str
    ) -> None:
        user, api = make_api()
        response = api.http.post("/templates", json={"name": "t", "steps": steps})
        errors = problem(response, 422)["errors"]
        assert field in {e["field"] for e in errors}, errors
        assert mongo["templates"].count_documents({"owner": user}) == 0

    def test_requirements_are_the_dotted_seed_paths(self, make_api: MakeApi) -> None:
        _, api = make_api()
        created = api.http.post("/templates", json=TWO_STEPS)
        assert created.status_code == 201
        assert created.json()["schema_requirements"] == ["persona.role", "product"]


class TestVersions:
    def test_put_adds_an_immutable_version_and_reads_pick_one(
        self, make_api: MakeApi, mongo: Any
    ) -> None:
        _, api = make_api()
        first = api.create_template(ONE_STEP)
        second_body = {**TWO_STEPS, "name": "v2"}
        second = api.http.put(f"/templates/{first['id']}", json=second_body)
        assert second.status_code == 200
        assert (second.json()["id"], second.json()["version"]) == (first["id"], 2)
        assert api.http.get(f"/templates/{first['id']}").json()["name"] == "v2"
        v1 = api.http.get(f"/templates/{first['id']}", params={"version": 1}).json()
        assert v1 == first
        versions = api.http.get(f"/templates/{first['id']}/versions").json()
        assert [v["version"] for v in versions["versions"]] == [2, 1]
        assert mongo["templates"].find_one({"_id": f"{first['id']}:1"})["name"] == "one-step"
        problem(api.http.get(f"/templates/{first['id']}", params={"version": 3}), 404)
        problem(api.http.put("/templates/nope", json=ONE_STEP), 404)
        bad = {**ONE_STEP, "steps": [step(model="acme.x")]}
        problem(api.http.put(f"/templates/{first['id']}", json=bad), 422)
        assert api.http.get(f"/templates/{first['id']}").json()["version"] == 2

    def test_concurrent_updates_through_two_replicas_each_make_their_own_version(
        self, make_api: MakeApi, make_tight_api: MakeApi, mongo: Any
    ) -> None:
        user, api = make_api()
        _, replica = make_tight_api(user)  # the same user on a second gateway process
        first = api.create_template(ONE_STEP)

        def update(n: int) -> Any:
            client = api if n % 2 else replica
            return client.http.put(f"/templates/{first['id']}", json={**ONE_STEP, "name": f"v{n}"})

        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(update, range(12)))
        assert [a.status_code for a in answers] == [200] * 12, [a.text for a in answers]
        made = {a.json()["version"]: a.json()["name"] for a in answers}
        assert sorted(made) == list(range(2, 14))
        stored = {
            doc["version"]: doc["name"]
            for doc in mongo["templates"].find({"template_id": first["id"]})
        }
        assert stored == {1: "one-step", **made}

    def test_an_update_whose_next_version_numbers_stay_taken_is_a_409_and_writes_nothing(
        self, make_api: MakeApi, mongo: Any
    ) -> None:
        """Others hold the next VERSION_ATTEMPTS versions (put straight into the database)."""
        _, api = make_api()
        first = api.create_template(ONE_STEP)
        taken = [f"{first['id']}:{version}" for version in range(2, 2 + VERSION_ATTEMPTS)]
        mongo["templates"].insert_many(
            [{"_id": key, "template_id": f"other-{uuid.uuid4().hex}"} for key in taken]
        )
        try:
            refused = api.http.put(f"/templates/{first['id']}", json={**ONE_STEP, "name": "v2"})
            busy = problem(refused, 409)
            assert busy["errors"][0]["field"] == "template_id"
            assert refused.headers["retry-after"] == "1"
            assert mongo["templates"].count_documents({"template_id": first["id"]}) == 1
        finally:
            mongo["templates"].delete_many({"_id": {"$in": taken}})
        retried = api.http.put(f"/templates/{first['id']}", json={**ONE_STEP, "name": "v2"})
        assert (retried.status_code, retried.json()["version"]) == (200, 2)

    def test_a_job_keeps_the_version_it_was_created_with(self, make_api: MakeApi) -> None:
        _, api = make_api()
        template, _, job = start(api, num_records=2)
        api.http.put(f"/templates/{template['id']}", json={**TWO_STEPS, "name": "later"})
        assert api.job(job["id"])["template_version"] == 1


class TestListing:
    def test_lists_own_and_public_latest_versions_in_pages(self, make_api: MakeApi) -> None:
        _, alice = make_api()
        _, bob = make_api()
        mine = [alice.create_template(ONE_STEP)["id"] for _ in range(2)]
        alice.http.put(f"/templates/{mine[0]}", json={**ONE_STEP, "name": "newer"})
        public = bob.create_template({**ONE_STEP, "name": "shared", "public": True})
        private = bob.create_template(ONE_STEP)
        seen: dict[str, dict[str, Any]] = {}
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
            page = alice.http.get("/templates", params=params).json()
            seen.update({t["id"]: t for t in page["items"]})
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert set(mine) <= set(seen)
        assert private["id"] not in seen
        assert (seen[mine[0]]["version"], seen[mine[0]]["name"]) == (2, "newer")
        assert seen[public["id"]]["owned"] is False
        assert seen[mine[1]]["owned"] is True
        problem(alice.http.get("/templates", params={"cursor": "bm9wZQ"}), 422)


class TestForkAndDelete:
    def test_a_public_template_forks_into_a_private_copy(self, make_api: MakeApi) -> None:
        _, alice = make_api()
        _, bob = make_api()
        public = alice.create_template({**TWO_STEPS, "public": True})
        fork = bob.http.post(f"/templates/{public['id']}/fork", json={"name": "mine"})
        assert fork.status_code == 201
        copy = fork.json()
        assert copy["id"] != public["id"]
        assert (copy["version"], copy["public"], copy["owned"], copy["name"]) == (
            1,
            False,
            True,
            "mine",
        )
        assert copy["forked_from"] == f"{public['id']}:1"
        assert copy["steps"] == public["steps"]
        assert bob.http.put(f"/templates/{copy['id']}", json=ONE_STEP).status_code == 200
        assert alice.http.get(f"/templates/{public['id']}").json()["version"] == 1
        problem(bob.http.put(f"/templates/{public['id']}", json=ONE_STEP), 404)

    def test_delete_waits_for_active_jobs_then_removes_every_version(
        self, make_api: MakeApi, mongo: Any
    ) -> None:
        _, api = make_api()
        template, _, job = start(api, num_records=500, budget_usd="5")
        api.http.put(f"/templates/{template['id']}", json=ONE_STEP)
        busy = problem(api.http.delete(f"/templates/{template['id']}"), 409)
        assert busy["errors"][0]["field"] == "template_id"
        api.cancel(job["id"])
        api.wait(job["id"], timeout=50, exported=False)  # cancelled before it started: no export
        assert api.http.delete(f"/templates/{template['id']}").status_code == 204
        assert mongo["templates"].count_documents({"template_id": template["id"]}) == 0
        problem(api.http.get(f"/templates/{template['id']}"), 404)
        problem(api.http.delete(f"/templates/{template['id']}"), 404)


class TestYaml:
    def test_export_then_import_makes_an_equal_template(self, make_api: MakeApi) -> None:
        _, api = make_api()
        original = api.create_template(TWO_STEPS)
        exported = api.http.get(f"/templates/{original['id']}/yaml")
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("application/yaml")
        assert "steps.question.output" in exported.text
        imported = api.http.post(
            "/templates/yaml",
            content=exported.content,
            headers={"Content-Type": "application/yaml"},
        )
        assert imported.status_code == 201, imported.text
        copy = imported.json()
        assert copy["id"] != original["id"]
        assert (copy["steps"], copy["schema_requirements"]) == (
            original["steps"],
            original["schema_requirements"],
        )

    def test_bad_yaml_is_a_422_and_creates_nothing(self, make_api: MakeApi, mongo: Any) -> None:
        user, api = make_api()
        for body in (b"a: &x 1\nb: *x\n", b"name: [", b"name: x\nsteps: []\n"):
            problem(api.http.post("/templates/yaml", content=body), 422)
        unpriced = f"name: x\nsteps:\n  - id: a\n    model: {HAIKU}x\n    prompt: hi\n"
        found = problem(api.http.post("/templates/yaml", content=unpriced.encode()), 422)
        assert found["errors"][0]["field"] == "steps[0].model"
        assert mongo["templates"].count_documents({"owner": user}) == 0
