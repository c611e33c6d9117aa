"""Bearer token minting and verification of the gateway."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from palette.gateway import bearer_tokens
from palette.gateway.auth import insecure_start
from palette.gateway.bearer_tokens import TokenError, bearer_token, mint, verify
from palette.gateway.settings import DEV_JWT_SECRET, GatewaySettings

pytestmark = pytest.mark.unit

SECRET = "unit-test-secret-that-is-long-enough-for-hs256-and-for-hs512-too-0123456789"


def _b64(data: dict[str, object]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class TestVerifyAcceptsGoodTokens:
    def test_returns_the_subject_of_a_minted_token(self) -> None:
        principal = verify(mint("alice", SECRET), SECRET)
        assert principal.sub == "alice"
        assert principal.claims["exp"] > time.time()

    def test_checks_issuer_and_audience_when_configured(self) -> None:
        token = mint("alice", SECRET, issuer="palette", audience="api")
        assert verify(token, SECRET, issuer="palette", audience="api").sub == "alice"


class TestVerifyRejectsBadTokens:
    def test_rejects_an_expired_token(self) -> None:
        token = mint("alice", SECRET, ttl_seconds=60, now=time.time() - 3600)
        with pytest.raises(TokenError, match="expired"):
            verify(token, SECRET)

    def test_rejects_a_token_without_exp(self) -> None:
        token = jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256")
        with pytest.raises(TokenError, match="exp"):
            verify(token, SECRET)

    def test_rejects_a_token_without_sub(self) -> None:
        token = jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256")
        with pytest.raises(TokenError, match="sub"):
            verify(token, SECRET)

    def test_rejects_alg_none(self) -> None:
        claims = {"sub": "alice", "exp": int(time.time()) + 60}
        token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
        with pytest.raises(TokenError):
            verify(token, SECRET)

    def test_rejects_another_hmac_algorithm(self) -> None:
        claims = {"sub": "alice", "exp": int(time.time()) + 60}
        token = jwt.encode(claims, SECRET, algorithm="HS512")
        with pytest.raises(TokenError, match="HS256"):
            verify(token, SECRET)

    def test_rejects_a_tampered_payload(self) -> None:
        header, _, signature = mint("alice", SECRET).split(".")
        forged = _b64({"sub": "mallory", "exp": int(time.time()) + 60})
        with pytest.raises(TokenError, match="invalid token"):
            verify(f"{header}.{forged}.{signature}", SECRET)

    def test_rejects_a_token_signed_with_another_secret(self) -> None:
        with pytest.raises(TokenError):
            verify(mint("alice", "another-secret-another-secret-another"), SECRET)

    def test_rejects_garbage(self) -> None:
        with pytest.raises(TokenError):
            verify("not.a.jwt", SECRET)

    def test_rejects_a_wrong_audience(self) -> None:
        token = mint("alice", SECRET, audience="other")
        with pytest.raises(TokenError):
            verify(token, SECRET, audience="api")

    def test_rejects_a_subject_unusable_as_owner(self) -> None:
        claims = {"sub": "../bob", "exp": int(time.time()) + 60}
        with pytest.raises(TokenError, match="subject"):
            verify(jwt.encode(claims, SECRET, algorithm="HS256"), SECRET)


class TestBearerHeader:
    def test_extracts_the_token(self) -> None:
        assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"
        assert bearer_token("bearer   abc") == "abc"

    @pytest.mark.parametrize("value", [None, "", "Basic dXNlcjpwdw==", "Bearer", "Bearer   "])
    def test_rejects_missing_or_other_schemes(self, value: str | None) -> None:
        with pytest.raises(TokenError):
            bearer_token(value)


class TestPaletteTokenCommand:
    def test_prints_a_token_for_the_subject(
        self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
    ) -> None:
        monkeypatch.setenv("PALETTE_GATEWAY_JWT_SECRET", SECRET)
        assert bearer_tokens.main(["--sub", "alice", "--ttl", "120"]) == 0
        token = capsys.readouterr().out.strip()
        principal = verify(token, SECRET)
        assert principal.sub == "alice"
        assert principal.claims["exp"] - principal.claims["iat"] == 120

    def test_refuses_an_unusable_subject(self) -> None:
        with pytest.raises(SystemExit):
            bearer_tokens.main(["--sub", "a/b"])


class TestInsecureStart:
    """The public dev secret is refused on any address beyond this machine."""

    @pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "[::1]", "localhost"])
    def test_the_dev_secret_may_listen_on_loopback(self, host: str) -> None:
        assert insecure_start(GatewaySettings(host=host, jwt_secret=DEV_JWT_SECRET)) is None

    @pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "gateway.internal"])
    def test_the_dev_secret_on_another_address_names_the_settings_to_set(self, host: str) -> None:
        problem = insecure_start(GatewaySettings(host=host, jwt_secret=DEV_JWT_SECRET))
        assert problem is not None
        assert problem.startswith(f"refusing to listen on {host} with the public development")
        assert "PALETTE_GATEWAY_JWT_SECRET" in problem
        assert "PALETTE_GATEWAY_JWT_JWKS_URL" in problem
        assert "\n" not in problem

    def test_a_secret_of_ones_own_or_a_jwks_may_listen_anywhere(self) -> None:
        assert insecure_start(GatewaySettings(host="0.0.0.0", jwt_secret=SECRET)) is None
        jwks = GatewaySettings(
            host="0.0.0.0",
            jwt_jwks_url="https://idp.example/jwks.json",
            jwt_issuer="https://idp.example/",
            jwt_audience="plot-palette",
        )
        assert insecure_start(jwks) is None
