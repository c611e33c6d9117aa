"""The page's routes of the gateway in-process, over in-memory fakes (no network).

``/ui`` serves the built page (any route of the page answers its index),
``/auth`` tells the page how to sign in and mints dev tokens only in dev mode,
``/jobs/{id}/records`` is the sample of records the page's viewer shows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from palette.common.keys import part_key
from palette.gateway.app import create_app
from palette.gateway.bearer_tokens import verify
from palette.gateway.settings import GatewaySettings
from tests.unit.gateway_fakes import InMemoryWorld
from tests.unit.test_gateway_app import SECRET, _alices_job, _problem, auth

pytestmark = pytest.mark.unit


def client_of(world: InMemoryWorld, settings: GatewaySettings) -> TestClient[Any]:
    return TestClient(create_app(settings, runtime_factory=world.runtime))


@pytest.fixture
def built(tmp_path: Path) -> Path:
    """A built page: an index and one hashed asset."""
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>page</title>")
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)")
    return tmp_path


class TestThePageIsServed:
    @pytest.fixture
    def client(self, built: Path) -> Iterator[TestClient[Any]]:
        with client_of(InMemoryWorld(), GatewaySettings(jwt_secret=SECRET, ui_dir=built)) as c:
            yield c

    def test_the_index_is_html_without_a_token(self, client: TestClient[Any]) -> None:
        response = client.get("/ui/")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["cache-control"] == "no-cache"
        assert "<title>page</title>" in response.text

    def test_a_route_of_the_page_answers_its_index(self, client: TestClient[Any]) -> None:
        response = client.get("/ui/jobs/some-job")
        assert response.status_code == 200
        assert "<title>page</title>" in response.text

    def test_hashed_assets_are_cached_for_good(self, client: TestClient[Any]) -> None:
        response = client.get("/ui/assets/index-abc123.js")
        assert response.headers["content-type"].startswith("text/javascript")
        assert "immutable" in response.headers["cache-control"]
        assert response.text == "console.log(1)"

    def test_a_path_out_of_the_build_answers_the_index(
        self, client: TestClient[Any], built: Path
    ) -> None:
        (built.parent / "secret.txt").write_text("secret")
        response = client.get("/ui/..%2Fsecret.txt")
        assert "secret" not in response.text

    def test_the_root_leads_to_the_page(self, client: TestClient[Any]) -> None:
        response = client.get("/", follow_redirects=False)
        assert response.status_code in (302, 307)
        assert response.headers["location"] == "/ui/"

    def test_an_unbuilt_page_is_a_404_problem_that_says_how_to_build_it(
        self, tmp_path: Path
    ) -> None:
        settings = GatewaySettings(jwt_secret=SECRET, ui_dir=tmp_path / "none")
        with client_of(InMemoryWorld(), settings) as client:
            body = _problem(client.get("/ui/"), 404)
        assert "make install" in body["detail"]


class TestSignIn:
    def test_dev_mode_mints_a_token_the_gateway_accepts(self) -> None:
        settings = GatewaySettings(jwt_secret=SECRET)
        with client_of(InMemoryWorld(), settings) as client:
            config = client.get("/auth/config").json()
            assert config["dev_sign_in"] is True
            assert config["oidc"] is None
            response = client.post("/auth/dev-token", json={"user": "alice"})
            assert response.status_code == 201, response.text
            minted = response.json()
            assert minted["user"] == "alice"
            assert verify(minted["token"], SECRET).sub == "alice"
            headers = {"Authorization": f"Bearer {minted['token']}"}
            assert client.get("/jobs", headers=headers).status_code == 200

    def test_a_bad_user_name_is_a_422_naming_the_field(self) -> None:
        with client_of(InMemoryWorld(), GatewaySettings(jwt_secret=SECRET)) as client:
            body = _problem(client.post("/auth/dev-token", json={"user": "a b"}), 422)
        assert body["errors"][0]["field"] == "user"

    def test_refused_in_jwks_mode_and_oidc_is_offered(self) -> None:
        settings = GatewaySettings(
            jwt_jwks_url="https://idp.example/jwks",
            jwt_issuer="https://idp.example",
            jwt_audience="plot-palette",
            oidc_client_id="palette-page",
        )
        with client_of(InMemoryWorld(), settings) as client:
            config = client.get("/auth/config").json()
            body = _problem(client.post("/auth/dev-token", json={"user": "alice"}), 403)
        assert config["dev_sign_in"] is False
        assert config["oidc"] == {
            "issuer": "https://idp.example",
            "client_id": "palette-page",
            "scope": "openid profile",
            "audience": "plot-palette",
        }
        assert "JWKS mode" in body["detail"]
        assert body["type"].endswith("dev-sign-in-refused")

    def test_refused_on_a_gateway_reachable_beyond_this_machine(self) -> None:
        settings = GatewaySettings(jwt_secret=SECRET, host="0.0.0.0")
        with client_of(InMemoryWorld(), settings) as client:
            body = _problem(client.post("/auth/dev-token", json={"user": "alice"}), 403)
        assert "not a loopback address" in body["detail"]

    def test_refused_when_turned_off(self) -> None:
        settings = GatewaySettings(jwt_secret=SECRET, dev_sign_in=False)
        with client_of(InMemoryWorld(), settings) as client:
            assert client.get("/auth/config").json()["dev_sign_in"] is False
            _problem(client.post("/auth/dev-token", json={"user": "alice"}), 403)


def part_line(job_id: str, index: int, outputs: dict[str, str], complete: bool = True) -> str:
    return json.dumps(
        {
            "id": f"{job_id}-{index}",
            "index": index,
            "seed_index": index % 3,
            "complete": complete,
            "outputs": outputs,
            "models": dict.fromkeys(outputs, "m"),
            "usage": {step: [1, 1] for step in outputs},
        }
    )


class TestRecordSample:
    @pytest.fixture
    def world(self) -> InMemoryWorld:
        return InMemoryWorld()

    @pytest.fixture
    def client(self, world: InMemoryWorld) -> Iterator[TestClient[Any]]:
        with client_of(world, GatewaySettings(jwt_secret=SECRET)) as c:
            yield c

    def test_empty_before_the_first_part(self, client: TestClient[Any]) -> None:
        job_id = _alices_job(client)
        body = client.get(f"/jobs/{job_id}/records", headers=auth("alice")).json()
        assert body == {"job_id": job_id, "steps": ["q"], "items": []}

    def test_the_lowest_records_with_each_steps_output(
        self, client: TestClient[Any], world: InMemoryWorld
    ) -> None:
        job_id = _alices_job(client)
        later = [part_line(job_id, i, {"q": f"out {i}"}) for i in (10, 11)]
        first = [part_line(job_id, 0, {"q": "out 0"}), part_line(job_id, 1, {}, complete=False)]
        world.seeds.objects[part_key(job_id, 10)] = "\n".join(later).encode()
        world.seeds.objects[part_key(job_id, 0)] = "\n".join(first).encode()
        response = client.get(f"/jobs/{job_id}/records?limit=3", headers=auth("alice"))
        items = response.json()["items"]
        assert [r["index"] for r in items] == [0, 1, 10]
        assert items[0]["outputs"] == {"q": "out 0"}
        assert items[1] == {
            "id": f"{job_id}-1",
            "index": 1,
            "seed_index": 1,
            "complete": False,
            "outputs": {"q": None},
            "models": {},
        }

    def test_another_users_job_is_a_404(self, client: TestClient[Any]) -> None:
        job_id = _alices_job(client)
        _problem(client.get(f"/jobs/{job_id}/records", headers=auth("bob")), 404)

    def test_the_limit_is_checked(self, client: TestClient[Any]) -> None:
        job_id = _alices_job(client)
        response = client.get(f"/jobs/{job_id}/records?limit=1000", headers=auth("alice"))
        body = _problem(response, 422)
        assert body["errors"][0]["field"] == "limit"
