"""A stand-in identity provider: RSA and EC signing keys, a JWKS on 127.0.0.1, and tokens.

It serves ``/.well-known/jwks.json`` from a thread of this process and counts
the fetches, so tests can tell whether the gateway refetched the key set.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

ISSUER = "https://idp.plot-palette.test/"
AUDIENCE = "plot-palette-api"
RSA_KID = "rsa-2026"
EC_KID = "ec-2026"


def b64url(data: bytes) -> str:
    """Base64url without padding, as JWS uses."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: dict[str, Any]) -> str:
    """A JWS segment: compact JSON, base64url."""
    return b64url(json.dumps(value, separators=(",", ":")).encode())


class IdentityProvider:
    """Keys, a JWKS server, and tokens signed (or forged) as a real provider would."""

    def __init__(self) -> None:
        self.rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec_key = ec.generate_private_key(ec.SECP256R1())
        self.other_rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        rsa_jwk = json.loads(RSAAlgorithm.to_jwk(self.rsa_key.public_key()))
        ec_jwk = json.loads(ECAlgorithm.to_jwk(self.ec_key.public_key()))
        self.jwks = {
            "keys": [
                {**rsa_jwk, "kid": RSA_KID, "use": "sig", "alg": "RS256"},
                {**ec_jwk, "kid": EC_KID, "use": "sig", "alg": "ES256"},
            ]
        }
        self.fetches = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def jwks_url(self) -> str:
        """Where the key set is served."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/.well-known/jwks.json"

    @property
    def rsa_public_pem(self) -> bytes:
        """The RS256 key's public half, PEM (what an algorithm-confusion attack signs with)."""
        return self.rsa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != "/.well-known/jwks.json":
                    self.send_error(404)
                    return
                idp.fetches += 1
                body = json.dumps(idp.jwks).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return

        return Handler

    def __enter__(self) -> IdentityProvider:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def claims(self, sub: str, **changes: Any) -> dict[str, Any]:
        """Valid claims for ``sub``; ``changes`` override (a value of None drops the claim)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": sub,
            "iss": ISSUER,
            "aud": AUDIENCE,
            "iat": now,
            "nbf": now - 1,
            "exp": now + 600,
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def token(self, sub: str, *, alg: str = "RS256", kid: str | None = None, **changes: Any) -> str:
        """A token signed by the provider's key for ``alg`` (RS256 or ES256)."""
        key: Any = self.rsa_key if alg == "RS256" else self.ec_key
        headers = {"kid": kid or (RSA_KID if alg == "RS256" else EC_KID)}
        return jwt.encode(self.claims(sub, **changes), key, algorithm=alg, headers=headers)

    def sign(self, claims: dict[str, Any]) -> str:
        """Exactly these claims, signed RS256 by the provider's key."""
        return jwt.encode(claims, self.rsa_key, algorithm="RS256", headers={"kid": RSA_KID})

    def signed_by_stranger(self, sub: str) -> str:
        """RS256 with the provider's kid but another key."""
        return jwt.encode(
            self.claims(sub), self.other_rsa_key, algorithm="RS256", headers={"kid": RSA_KID}
        )

    def alg_none(self, sub: str) -> str:
        """An unsigned token (``alg: none``) naming the provider's key."""
        header = b64json({"alg": "none", "typ": "JWT", "kid": RSA_KID})
        return f"{header}.{b64json(self.claims(sub))}."

    def hs256_with_public_key(self, sub: str) -> str:
        """HS256 keyed with the RS256 public key: the algorithm-confusion attack."""
        header = b64json({"alg": "HS256", "typ": "JWT", "kid": RSA_KID})
        signing_input = f"{header}.{b64json(self.claims(sub))}"
        mac = hmac.new(self.rsa_public_pem, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(mac)}"

    def tampered(self, sub: str, other: str) -> str:
        """A valid token whose payload is swapped for ``other``'s, signature kept."""
        header, _, signature = self.token(sub).split(".")
        return f"{header}.{b64json(self.claims(other))}.{signature}"
