"""Production-mode settings and key checks of the gateway's JWKS verification (no I/O)."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt import PyJWK
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from pydantic import ValidationError

from palette.gateway.auth import HS256Verifier, make_verifier
from palette.gateway.jwks import JWKSVerifier, key_fits
from palette.gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit

RSA_JWK = json.loads(RSAAlgorithm.to_jwk(rsa.generate_private_key(65537, 2048).public_key()))
EC_JWK = json.loads(ECAlgorithm.to_jwk(ec.generate_private_key(ec.SECP256R1()).public_key()))


class TestKeyFits:
    @pytest.mark.parametrize(
        ("jwk", "alg", "fits"),
        [
            (RSA_JWK, "RS256", True),
            ({**RSA_JWK, "alg": "RS256"}, "RS256", True),
            ({**RSA_JWK, "alg": "RS512"}, "RS256", False),
            (RSA_JWK, "ES256", False),
            (RSA_JWK, "HS256", False),
            (EC_JWK, "ES256", True),
            (EC_JWK, "RS256", False),
        ],
    )
    def test_the_key_must_match_the_tokens_algorithm(
        self, jwk: dict[str, str], alg: str, fits: bool
    ) -> None:
        assert key_fits(PyJWK(jwk), alg) is fits


class TestMode:
    def test_jwks_mode_needs_issuer_and_audience(self) -> None:
        with pytest.raises(ValidationError, match="jwt_issuer and jwt_audience"):
            GatewaySettings(jwt_jwks_url="https://idp.example/jwks.json")

    def test_jwks_mode_refuses_symmetric_algorithms(self) -> None:
        with pytest.raises(ValidationError, match="asymmetric"):
            GatewaySettings(
                jwt_jwks_url="https://idp.example/jwks.json",
                jwt_issuer="i",
                jwt_audience="a",
                jwt_algorithms=["RS256", "HS256"],
            )

    def test_the_mode_picks_the_verifier(self) -> None:
        jwks = GatewaySettings(
            jwt_jwks_url="https://idp.example/jwks.json", jwt_issuer="i", jwt_audience="a"
        )
        assert isinstance(make_verifier(jwks), JWKSVerifier)
        assert isinstance(make_verifier(GatewaySettings()), HS256Verifier)
