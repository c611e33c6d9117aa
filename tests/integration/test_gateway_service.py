"""The service around the routes: health, readiness, OpenAPI and docs, problem details, limits."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from palette.devstack.processes import free_port
from palette.devstack.stack import DevStack
from tests.examples import SEEDS
from tests.integration.gateway_fixtures import MakeApi, gateway_process
from tests.integration.identity import AUDIENCE, ISSUER, IdentityProvider
from tests.integration.jobs import ONE_STEP, job_body, problem

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


class TestStartupRefusal:
    def test_the_dev_secret_on_all_interfaces_exits_non_zero_with_one_line(
        self, tmp_path: Path
    ) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PALETTE_GATEWAY_")}
        env |= {"PALETTE_GATEWAY_HOST": "0.0.0.0", "PALETTE_GATEWAY_PORT": str(free_port())}
        ran = subprocess.run(
            [sys.executable, "-m", "palette.gateway"],
            env=env,
            cwd=tmp_path,  # no .env here
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert ran.returncode != 0
        assert ran.stdout == ""
        assert ran.stderr.splitlines() == [
            "palette-gateway: refusing to listen on 0.0.0.0 with the public development JWT "
            "secret: set PALETTE_GATEWAY_JWT_SECRET to a long random secret (e.g. openssl rand "
            "-hex 32), or PALETTE_GATEWAY_JWT_JWKS_URL with PALETTE_GATEWAY_JWT_ISSUER and "
            "PALETTE_GATEWAY_JWT_AUDIENCE, or PALETTE_GATEWAY_HOST=127.0.0.1"
        ]


class TestHealthAndDocs:
    def test_health_and_readiness_need_no_token(self, gateway_url: str) -> None:
        assert httpx.get(f"{gateway_url}/health").json() == {"status": "ok", "checks": {}}
        ready = httpx.get(f"{gateway_url}/ready").json()
        assert ready == {"status": "ready", "checks": {"broker": "ok", "database": "ok"}}

    def test_a_gateway_cut_off_from_its_dependencies_answers_503_naming_them(
        self, devstack: DevStack, identity_provider: IdentityProvider, tmp_path: Any
    ) -> None:
        """No broker, no database and no identity provider listen where it looks for them."""
        env = {
            **devstack.env(),
            "RABBITMQ_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/",
            "PALETTE_MONGO_URL": f"mongodb://127.0.0.1:{free_port()}/",
            "PALETTE_GATEWAY_JWT_JWKS_URL": f"http://127.0.0.1:{free_port()}/jwks.json",
            "PALETTE_GATEWAY_JWT_ISSUER": ISSUER,
            "PALETTE_GATEWAY_JWT_AUDIENCE": AUDIENCE,
            "PALETTE_GATEWAY_JWT_JWKS_TIMEOUT_SECONDS": "1",
        }
        with gateway_process("gateway-cut-off", env, tmp_path) as gateway:
            token = identity_provider.token("cut-off-user")
            keyless = httpx.get(
                f"{gateway.url}/templates", headers={"Authorization": f"Bearer {token}"}, timeout=10
            )
            assert "signing keys cannot be fetched" in problem(keyless, 503)["detail"]
            assert keyless.headers["retry-after"] == "5"
            assert httpx.get(f"{gateway.url}/health", timeout=10).json()["status"] == "ok"
            response = httpx.get(f"{gateway.url}/ready", timeout=10)
            found = problem(response, 503)
            assert {e["field"]: e["problem"] for e in found["errors"]} == {
                "broker": "not connected",
                "database": "not answering",
            }
            assert response.headers["retry-after"] == "2"

    def test_the_openapi_document_names_every_operation_and_docs_are_served(
        self, gateway_url: str
    ) -> None:
        document = httpx.get(f"{gateway_url}/schema/openapi.json").json()
        operations = [
            op
            for path in document["paths"].values()
            for method, op in path.items()
            if method in {"get", "post", "put", "delete", "patch"}
        ]
        assert len(operations) == 34
        ids = [op.get("operationId") for op in operations]
        assert all(ids)
        assert "getUsage" in ids
        assert {"createWebhook", "listWebhookDeliveries", "resendWebhookDelivery"} <= set(ids)
        assert {"getSignInConfig", "devSignIn", "getJobRecords"} <= set(ids)  # the page's
        assert len(set(ids)) == len(ids)
        by_id = {op["operationId"]: op for op in operations}
        cancel = by_id["cancelJob"]
        assert "ETag" in cancel["responses"]["202"]["headers"]
        assert "/jobs/{job_id}/cancel" in document["paths"]
        delete = by_id["deleteJob"]
        assert "412" in delete["responses"]
        headers = {p["name"] for p in delete.get("parameters", []) if p["in"] == "header"}
        assert "If-Match" in headers
        assert "ETag" in by_id["getJob"]["responses"]["200"]["headers"]
        public = {"getHealth", "getReady", "getSignInConfig"}  # no token, nothing to refuse
        for op in operations:
            if op["operationId"] in public:
                assert "200" in op["responses"], op["operationId"]
                assert "401" not in op["responses"], op["operationId"]
            else:
                assert {"401", "422", "429"} <= set(op["responses"]), op["operationId"]
                assert "application/problem+json" in op["responses"]["401"]["content"]
        for page in ("/schema/swagger", "/schema/redoc", "/schema/elements"):
            response = httpx.get(f"{gateway_url}{page}")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/html")

    def test_errors_everywhere_are_problem_details(
        self, make_api: MakeApi, gateway_url: str
    ) -> None:
        _, api = make_api()
        problem(api.http.get("/nowhere"), 404)
        problem(api.http.patch("/jobs"), 405)
        problem(api.http.post("/templates", content=b"{not json"), 400)
        problem(api.http.post("/templates", json={"name": "x"}), 422)
        unauthenticated = httpx.get(f"{gateway_url}/jobs")
        assert problem(unauthenticated, 401)["errors"][0]["field"] == "Authorization"
        assert unauthenticated.headers["www-authenticate"].startswith("Bearer")


class TestLimits:
    def test_bodies_above_the_limit_are_413(self, strict_api: Any) -> None:
        _, api = strict_api()
        big_json = {"name": "x" * 70_000, "steps": ONE_STEP["steps"]}
        problem(api.http.post("/templates", json=big_json), 413)
        problem(api.http.post("/seed-data?filename=s.jsonl", content=b'{"a": 1}\n' * 20_000), 413)
        too_big = {"filename": "s.jsonl", "bytes": 100_001}
        problem(api.http.post("/seed-data/uploads", json=too_big), 413)
        big_job = {"template_id": "t" * 200, "seed_key": "k" * 70_000}
        problem(api.http.post("/jobs", json=big_job), 413)

    def test_validating_a_file_above_the_upload_limit_is_413(
        self, strict_api: Any, devstack: Any, s3: Any
    ) -> None:
        user, api = strict_api()
        template = api.create_template(ONE_STEP)
        key = f"seed-data/{user}/huge.jsonl"  # put there by other means than a ticket
        s3.put_object(Bucket=devstack.bucket, Key=key, Body=b'{"product": 1}\n' * 8000)
        body = {"key": key, "template_id": template["id"]}
        problem(api.http.post("/seed-data/validate", json=body), 413)

    def test_a_users_requests_above_the_rate_get_429_with_retry_after(
        self, strict_api: Any
    ) -> None:
        _, api = strict_api()
        _, other = strict_api()
        answers = [api.http.get("/templates") for _ in range(12)]
        limited = [a for a in answers if a.status_code == 429]
        assert limited, [a.status_code for a in answers]
        assert sum(a.status_code == 200 for a in answers) >= 8  # the burst
        found = problem(limited[0], 429)
        assert int(limited[0].headers["retry-after"]) >= 1
        assert "requests per second" in found["detail"]
        assert other.http.get("/templates").status_code == 200  # another user is not limited
        time.sleep(float(limited[0].headers["retry-after"]))
        assert api.http.get("/templates").status_code == 200

    def test_more_active_jobs_than_allowed_get_429(self, strict_api: Any, mongo: Any) -> None:
        user, api = strict_api()
        template = api.create_template(ONE_STEP)
        seeds = api.upload_seeds(SEEDS)
        body = job_body(template["id"], seeds["key"], num_records=5000, budget_usd="2")
        first = api.submit_job(**body)
        second = api.submit_job(**body)
        refused = api.http.post("/jobs", json=body)
        assert problem(refused, 429)["type"].endswith("too-many-active-jobs")
        assert int(refused.headers["retry-after"]) > 0
        assert mongo["jobs"].count_documents({"owner": user}) == 2
        for job in (first, second):
            assert api.http.delete(f"/jobs/{job['id']}").status_code == 202
