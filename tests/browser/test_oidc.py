"""The page's production sign-in: OpenID Connect authorization code with PKCE, in Chromium.

The identity provider is ``oidc-provider-mock`` (PyPI) on a local port: its
discovery document, authorization form, token endpoint and key set are the
real ones. Two settings of it are ours: its access tokens are RS256 JWTs signed
with its own key (with a ``kid``) and carrying the gateway's audience, as real
providers issue them for an API (RFC 9068); its default access token is an
opaque string no API could verify offline. It does not check PKCE itself, so
the test checks on the wire that the page sends an S256 challenge and the
verifier that matches it. A second gateway, in JWKS mode, trusts that issuer.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import flask
import joserfc.jwk
import joserfc.jwt
import pytest
import werkzeug.serving
from oidc_provider_mock import init_app
from playwright.sync_api import Request, expect

from palette.devstack.services import ServiceProcess
from palette.devstack.stack import DevStack
from tests.browser.conftest import NewPage, Shot
from tests.integration.gateway_fixtures import gateway_process

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

AUDIENCE = "plot-palette-api"
CLIENT_ID = "plot-palette-page"
# The provider's own form page styles itself from a CDN: answered empty here (it is not the
# page under test, whose requests all stay on this machine).
PROVIDER_CSS = "https://cdn.jsdelivr.net/npm/@picocss/pico@2/css/pico.min.css"


def jwt_access_token(client: Any, grant_type: str, user: Any, scope: str) -> str:
    """An RS256 JWT access token for the gateway, signed with the provider's key."""
    key: joserfc.jwk.RSAKey = flask.g.oidc_provider_mock_storage.jwk  # the key its JWKS serves
    key.ensure_kid()
    now = int(time.time())
    claims = {
        "iss": flask.request.host_url.rstrip("/"),
        "sub": user.sub,
        "aud": AUDIENCE,
        "client_id": client.id,
        "scope": scope,
        "iat": now,
        "exp": now + 3600,
    }
    return joserfc.jwt.encode({"alg": "RS256", "typ": "at+jwt", "kid": key.kid}, claims, key)


@pytest.fixture(scope="module")
def issuer() -> Iterator[str]:
    """oidc-provider-mock on 127.0.0.1; its issuer URL."""
    # Its blueprint renders the package's own templates (as its ``app()`` finds them).
    app = flask.Flask(__name__, template_folder=str(files("oidc_provider_mock") / "templates"))
    app.secret_key = secrets.token_bytes(16)
    app.config["OAUTH2_ACCESS_TOKEN_GENERATOR"] = jwt_access_token
    init_app(app, issue_refresh_token=False)
    server = werkzeug.serving.make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(5)
        server.server_close()


@pytest.fixture(scope="module")
def oidc_gateway(
    devstack: DevStack, issuer: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """A gateway in JWKS (production) mode that trusts ``issuer`` and names the page's client."""
    env = {
        **devstack.env(),
        "PALETTE_GATEWAY_JWT_JWKS_URL": f"{issuer}/jwks",
        "PALETTE_GATEWAY_JWT_ISSUER": issuer,
        "PALETTE_GATEWAY_JWT_AUDIENCE": AUDIENCE,
        "PALETTE_GATEWAY_OIDC_CLIENT_ID": CLIENT_ID,
    }
    log_dir: Path = tmp_path_factory.mktemp("oidc-gateway")
    with gateway_process("gateway-oidc", env, log_dir) as gateway:
        yield gateway


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of a verifier."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class TestOidcSignIn:
    def test_signs_in_with_the_code_flow_and_pkce_and_the_token_reaches_the_api(
        self, new_page: NewPage, oidc_gateway: ServiceProcess, issuer: str, shot: Shot
    ) -> None:
        page = new_page()
        page.context.route(
            PROVIDER_CSS, lambda route: route.fulfill(body="", content_type="text/css")
        )
        sent: list[Request] = []

        def record(request: Request) -> None:  # Playwright needs a function it can tag
            sent.append(request)

        page.on("request", record)

        page.goto(f"{oidc_gateway.url}/ui/")
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        expect(page.get_by_text(f"identity provider ({issuer})")).to_be_visible()
        expect(page.get_by_role("heading", name="Dev sign-in")).to_have_count(0)
        page.get_by_test_id("oidc-sign-in").click()

        # The provider's own form: the page sent an authorization code request with PKCE.
        subject = page.get_by_label("Subject")
        expect(subject).to_be_visible()
        authorize = parse_qs(urlsplit(page.url).query)
        assert page.url.startswith(f"{issuer}/oauth2/authorize"), page.url
        assert authorize["response_type"] == ["code"]
        assert authorize["client_id"] == [CLIENT_ID]
        assert authorize["redirect_uri"] == [f"{oidc_gateway.url}/ui/callback"]
        assert authorize["code_challenge_method"] == ["S256"]
        user = f"oidc-{uuid.uuid4().hex[:10]}"
        subject.fill(user)
        subject.press("Enter")

        # Back on the page, signed in as that subject; the API accepted the access token.
        expect(page.get_by_test_id("user-menu")).to_have_text(user)
        expect(page.get_by_test_id("no-jobs")).to_be_visible()
        page.get_by_role("link", name="Webhooks").click()
        expect(page.get_by_test_id("no-webhooks")).to_be_visible()
        shot(page, "oidc-signed-in")

        (token_request,) = [
            r for r in sent if r.method == "POST" and r.url == f"{issuer}/oauth2/token"
        ]
        form = parse_qs(token_request.post_data or "")
        assert form["grant_type"] == ["authorization_code"]
        assert s256(form["code_verifier"][0]) == authorize["code_challenge"][0]
        api_calls = [
            r
            for r in sent
            if r.url.startswith(f"{oidc_gateway.url}/webhooks") and r.method == "GET"
        ]
        assert api_calls, "the page asked the API for nothing"
        response = token_request.response()
        assert response is not None
        access_token = response.json()["access_token"]
        assert api_calls[-1].headers["authorization"] == f"Bearer {access_token}"

        page.get_by_test_id("user-menu").click()
        page.get_by_role("link", name="Sign out").click()
        expect(page.get_by_test_id("oidc-sign-in")).to_be_visible()
