"""One webhook attempt over real sockets: where it connects, what it refuses, what it follows.

These drive accounting's ``webhook_sender.post`` and ``_send`` against real
HTTP(S) servers on 127.0.0.1 (no broker, no services): the attempt connects to
the address that was checked and keeps the URL's name for ``Host``, SNI and
the certificate; a host resolving to loopback is refused before any
connection; a redirect is an answer, never followed.
"""

from __future__ import annotations

import datetime as dt
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from palette.accounting.settings import AccountingSettings
from palette.accounting.webhook_sender import _send, make_client, post
from palette.common.webhooks import Target
from palette.gateway.controllers.webhooks import new_secret
from tests.integration.webhook_receiver import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NAME = "hooks.palette.test"  # no DNS knows it: only a pinned connection reaches the server
EVENT = "msg_" + "a" * 32
BODY = b'{"type":"webhook.test"}'


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for ``NAME`` and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, NAME)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class TlsServer:
    """An HTTPS server on 127.0.0.1 with a certificate for ``NAME``; records SNI and Host."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.requests: list[dict[str, Any]] = []
        self.server_names: list[str | None] = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        context.sni_callback = lambda sock, name, ctx: self.server_names.append(name)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                server.requests.append({"host": self.headers["host"], "body": body})
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[TlsServer, Path]]:
    cert, key = self_signed(tmp_path)
    server = TlsServer(cert, key)
    server.thread.start()
    yield server, cert
    server.httpd.shutdown()
    server.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as running:
        yield running


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(AccountingSettings(webhook_timeout_seconds=5)) as made:
        yield made


class TestPinnedConnection:
    async def test_connects_to_the_checked_address_with_the_name_for_host_sni_and_cert(
        self, tls_server: tuple[TlsServer, Path]
    ) -> None:
        server, cert = tls_server
        url = f"https://{NAME}:{server.port}/hook"
        target = Target(url, "https", NAME, server.port, ("127.0.0.1",))
        trusting = httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=str(cert)),
            trust_env=False,
            follow_redirects=False,
            limits=httpx.Limits(max_keepalive_connections=0),
        )
        async with trusting:
            status = await _send(trusting, target, {"content-type": "application/json"}, BODY)
        assert status == 204
        assert server.requests == [{"host": f"{NAME}:{server.port}", "body": BODY}]
        assert server.server_names == [NAME]

    async def test_a_certificate_for_another_name_is_refused(
        self, tls_server: tuple[TlsServer, Path]
    ) -> None:
        server, cert = tls_server
        other = "other.palette.test"
        target = Target(
            f"https://{other}:{server.port}/", "https", other, server.port, ("127.0.0.1",)
        )
        trusting = httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(cert)))
        async with trusting:
            with pytest.raises(httpx.ConnectError, match="certificate"):
                await _send(trusting, target, {}, BODY)
        assert server.requests == []


class TestRefusedBeforeConnecting:
    @pytest.mark.parametrize(
        ("host", "reason"),
        [
            ("localhost", "localhost resolves to"),
            ("127.0.0.1", "127.0.0.1 is a loopback address"),
            ("[::1]", "::1 is a loopback address"),
        ],
    )
    async def test_a_loopback_host_is_refused_without_the_allow_list(
        self, receiver: Receiver, client: httpx.AsyncClient, host: str, reason: str
    ) -> None:
        url = f"https://{host}:{receiver.port}/hook"
        result = await post(
            client, url, new_secret(), EVENT, BODY, allowed_hosts=[], limit_seconds=5
        )
        assert result.error is not None
        assert reason in result.error
        assert result.error.startswith("refused:")
        assert result.error.count("a loopback address") == 1
        assert not result.retry
        assert result.status_code is None
        assert receiver.connections == 0

    @pytest.mark.parametrize("address", ["10.1.2.3", "169.254.169.254"])
    async def test_private_and_metadata_addresses_are_refused(
        self, client: httpx.AsyncClient, address: str
    ) -> None:
        result = await post(
            client,
            f"https://{address}/latest",
            new_secret(),
            EVENT,
            BODY,
            allowed_hosts=[],
            limit_seconds=5,
        )
        assert result.error is not None
        assert result.error.startswith(f"refused: {address} is a")


class TestAllowListedAttempts:
    async def test_delivers_signed_to_an_allow_listed_host(
        self, receiver: Receiver, client: httpx.AsyncClient
    ) -> None:
        secret = new_secret()
        result = await post(
            client,
            receiver.url("/ok"),
            secret,
            EVENT,
            BODY,
            allowed_hosts=["localhost"],
            limit_seconds=5,
        )
        assert result.delivered
        assert result.latency_ms is not None
        [got] = receiver.received("/ok")
        assert got.webhook_id == EVENT
        assert got.verify(secret) == {"type": "webhook.test"}

    async def test_a_redirect_is_an_answer_and_never_followed(
        self, receiver: Receiver, client: httpx.AsyncClient
    ) -> None:
        receiver.redirect("/moved", receiver.url("/elsewhere"))
        result = await post(
            client,
            receiver.url("/moved"),
            new_secret(),
            EVENT,
            BODY,
            allowed_hosts=["localhost"],
            limit_seconds=5,
        )
        assert result.status_code == 302
        assert not result.delivered
        assert result.error == "HTTP 302"
        assert result.retry
        assert len(receiver.received("/moved")) == 1
        assert receiver.received("/elsewhere") == []

    async def test_a_receiver_that_does_not_answer_in_time_fails_the_attempt(
        self, receiver: Receiver, client: httpx.AsyncClient
    ) -> None:
        release = receiver.hold("/slow")
        try:
            result = await post(
                client,
                receiver.url("/slow"),
                new_secret(),
                EVENT,
                BODY,
                allowed_hosts=["localhost"],
                limit_seconds=0.5,
            )
        finally:
            release.set()
        assert result.status_code is None
        assert result.error == "no answer within 0.5s"
        assert result.retry
