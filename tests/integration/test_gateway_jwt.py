"""The JWT battery: every forged, stale or foreign token is a 401, on real gateway processes.

Production mode: the strict gateway verifies RS256/ES256 tokens against the
JWKS that ``identity_provider`` serves on 127.0.0.1. Development mode: the
session's gateway verifies HS256 tokens with its secret.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import jwt
import pytest

from palette.devstack.services import ServiceProcess
from palette.gateway.bearer_tokens import mint
from tests.integration.identity import AUDIENCE, EC_KID, ISSUER, RSA_KID, IdentityProvider, b64json
from tests.integration.jobs import problem

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

LEEWAY = 5  # the strict gateway's PALETTE_GATEWAY_JWT_LEEWAY_SECONDS
Forge = Callable[[IdentityProvider, str], str]

BATTERY: dict[str, Forge] = {
    "alg-none": lambda idp, sub: idp.alg_none(sub),
    "hs256-signed-with-the-rs256-public-key": lambda idp, sub: idp.hs256_with_public_key(sub),
    "expired-beyond-leeway": lambda idp, sub: idp.token(
        sub, exp=int(time.time()) - LEEWAY - 60, iat=int(time.time()) - 3600
    ),
    "nbf-in-the-future": lambda idp, sub: idp.token(sub, nbf=int(time.time()) + LEEWAY + 300),
    "wrong-audience": lambda idp, sub: idp.token(sub, aud="another-api"),
    "wrong-issuer": lambda idp, sub: idp.token(sub, iss="https://evil.example/"),
    "missing-exp": lambda idp, sub: idp.token(sub, exp=None),
    "unknown-kid": lambda idp, sub: idp.token(sub, kid="not-in-the-jwks"),
    "tampered-payload": lambda idp, sub: idp.tampered("someone-else", sub),
    "signed-by-another-key-with-a-known-kid": lambda idp, sub: idp.signed_by_stranger(sub),
    "es256-header-naming-the-rsa-key": lambda idp, sub: idp.token(sub, alg="ES256", kid=RSA_KID),
    "missing-sub": lambda idp, sub: idp.sign(
        {k: v for k, v in idp.claims(sub).items() if k != "sub"}
    ),
    "not-a-jwt": lambda idp, sub: "not.a.jwt",
}


def get(url: str, token: str) -> httpx.Response:
    return httpx.get(f"{url}/templates", headers={"Authorization": f"Bearer {token}"})


@pytest.mark.long
class TestJWKSMode:
    @pytest.mark.parametrize("alg", ["RS256", "ES256"])
    def test_a_token_of_the_identity_provider_is_accepted(
        self, strict_gateway: ServiceProcess, identity_provider: IdentityProvider, alg: str
    ) -> None:
        token = identity_provider.token(f"jwt-ok-{alg}", alg=alg)
        assert get(strict_gateway.url, token).status_code == 200

    def test_expiry_within_the_leeway_is_accepted(
        self, strict_gateway: ServiceProcess, identity_provider: IdentityProvider
    ) -> None:
        token = identity_provider.token("jwt-leeway", exp=int(time.time()) - 1)
        assert get(strict_gateway.url, token).status_code == 200

    @pytest.mark.parametrize("case", list(BATTERY), ids=list(BATTERY))
    def test_every_bad_token_is_a_401(
        self, strict_gateway: ServiceProcess, identity_provider: IdentityProvider, case: str
    ) -> None:
        token = BATTERY[case](identity_provider, "jwt-victim")
        response = get(strict_gateway.url, token)
        found = problem(response, 401)
        assert found["errors"][0]["field"] == "Authorization"
        assert 'error="invalid_token"' in response.headers["www-authenticate"]

    def test_a_dev_hs256_token_is_refused_in_jwks_mode(
        self, strict_gateway: ServiceProcess, jwt_secret: str
    ) -> None:
        problem(get(strict_gateway.url, mint("dev-user", jwt_secret)), 401)

    def test_unknown_kids_do_not_make_the_gateway_refetch_the_key_set_each_time(
        self, strict_gateway: ServiceProcess, identity_provider: IdentityProvider
    ) -> None:
        get(strict_gateway.url, identity_provider.token("warm-up"))
        before = identity_provider.fetches
        for n in range(5):
            token = identity_provider.token("kid-storm", kid=f"random-{n}")
            problem(get(strict_gateway.url, token), 401)
        assert identity_provider.fetches - before <= 1

    def test_the_key_set_is_served_locally(self, identity_provider: IdentityProvider) -> None:
        keys = httpx.get(identity_provider.jwks_url).json()["keys"]
        assert {k["kid"] for k in keys} == {RSA_KID, EC_KID}
        assert all("d" not in k for k in keys)  # public halves only


class TestDevMode:
    @pytest.mark.parametrize(
        "case",
        [
            "alg-none",
            "wrong-secret",
            "expired",
            "nbf-in-the-future",
            "missing-exp",
            "tampered-payload",
            "rs256",
        ],
    )
    def test_every_bad_token_is_a_401(
        self, gateway_url: str, jwt_secret: str, identity_provider: IdentityProvider, case: str
    ) -> None:
        now = int(time.time())
        claims = {"sub": "dev-victim", "iat": now, "exp": now + 600}
        forged = {
            "alg-none": lambda: f"{b64json({'alg': 'none'})}.{b64json(claims)}.",
            "wrong-secret": lambda: jwt.encode(claims, "x" * 64, algorithm="HS256"),
            "expired": lambda: jwt.encode({**claims, "exp": now - 60}, jwt_secret, "HS256"),
            "nbf-in-the-future": lambda: jwt.encode(
                {**claims, "nbf": now + 300}, jwt_secret, "HS256"
            ),
            "missing-exp": lambda: jwt.encode({"sub": "dev-victim"}, jwt_secret, "HS256"),
            "tampered-payload": lambda: ".".join(
                [
                    mint("dev-victim", jwt_secret).split(".")[0],
                    b64json({**claims, "sub": "admin"}),
                    mint("dev-victim", jwt_secret).split(".")[2],
                ]
            ),
            "rs256": lambda: identity_provider.token("dev-victim", iss=ISSUER, aud=AUDIENCE),
        }[case]()
        problem(get(gateway_url, forged), 401)

    def test_a_minted_dev_token_is_accepted(self, gateway_url: str, jwt_secret: str) -> None:
        assert get(gateway_url, mint("dev-ok", jwt_secret)).status_code == 200
