"""``make test-image``'s own logic, checked without building anything.

The real run (``make test-image``: build, then every service from the image
against RabbitMQ and the dev stack) takes minutes and is not part of ``make
test``; these check what it decides: podman's limits, the build's arguments
(the CA bundle as a secret), the base images' names, what it says and its exit
code on a machine with no engine, and that ``make test`` leaves it out.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import pytest
from tools.image.build import (
    BASE_SCRIPT,
    Bases,
    base_script_argv,
    build_argv,
    dockerfile_args,
    qualified,
)
from tools.image.engine import PODMAN_NPROC_CAP, containers_conf
from tools.image.run import amqp_answers, page_assets

from tests.deploy.files import DOCKERFILE, ROOT, dockerfile

pytestmark = pytest.mark.deploy

BASES = Bases(
    "localhost/palette-python:3.12-bookworm",
    "localhost/palette-uv:0.13.9",
    "localhost/palette-node:20.20.2-bookworm",
    "made",
)
CA_TARGET = "/etc/ssl/certs/ca-certificates.crt"


def secret_mounts(command: str) -> list[dict[str, str]]:
    """The secret mounts of every RUN whose command holds ``command``, as key=value fields."""
    return [
        dict(f.split("=", 1) for f in w.removeprefix("--mount=").split(","))
        for i in dockerfile()
        if i.keyword == "RUN" and command in i.args
        for w in i.words()
        if w.startswith("--mount=type=secret")
    ]


class TestPodmanSettings:
    def test_limits_are_the_machines_hard_ones_and_runc_runs_containers(self) -> None:
        conf = tomllib.loads(containers_conf(20000, 3000))
        assert conf["containers"]["default_ulimits"] == ["nofile=20000:20000", "nproc=3000:3000"]
        assert conf["engine"]["runtime"] == "runc"

    def test_processes_stay_within_what_podman_itself_may_have(self) -> None:
        conf = tomllib.loads(containers_conf(20000, 96367))
        assert (
            f"nproc={PODMAN_NPROC_CAP}:{PODMAN_NPROC_CAP}" in conf["containers"]["default_ulimits"]
        )

    def test_unlimited_limits_get_podmans_defaults(self) -> None:
        unlimited = resource.RLIM_INFINITY
        limits = tomllib.loads(containers_conf(unlimited, unlimited))["containers"]
        assert limits["default_ulimits"] == [
            "nofile=1048576:1048576",
            f"nproc={PODMAN_NPROC_CAP}:{PODMAN_NPROC_CAP}",
        ]


class TestBuild:
    def test_bundle_goes_in_as_the_secret_the_dockerfile_mounts(self, tmp_path: Path) -> None:
        bundle = tmp_path / "ca.crt"
        argv = build_argv("docker", "plot-palette:t", BASES, bundle)
        assert argv[argv.index("--secret") + 1] == f"id=ca-certificates,src={bundle}"
        assert argv[-1] == str(ROOT)
        assert f"PYTHON_IMAGE={BASES.python}" in argv
        assert f"UV_IMAGE={BASES.uv}" in argv
        assert f"NODE_IMAGE={BASES.node}" in argv
        assert "--network=host" not in argv
        for command in ("uv sync", "npm ci"):
            mounts = secret_mounts(command)
            assert mounts, f"the {command} steps mount no CA bundle"
            for fields in mounts:
                assert fields["id"] == "ca-certificates"
                assert fields["target"] == CA_TARGET

    def test_every_build_argument_names_a_base_the_dockerfile_takes(self) -> None:
        argv = build_argv("podman", "plot-palette:t", BASES, None)
        given = {argv[i + 1].split("=", 1)[0] for i, w in enumerate(argv) if w == "--build-arg"}
        assert given == {"PYTHON_IMAGE", "UV_IMAGE", "NODE_IMAGE"}
        assert given <= set(dockerfile_args(DOCKERFILE.read_text(encoding="utf-8")))
        froms = {i.stage: i.args.split()[0] for i in dockerfile() if i.keyword == "FROM"}
        assert froms["ui"] == "${NODE_IMAGE}"

    def test_npm_trusts_the_secret_bundle_only_in_its_own_step(self) -> None:
        (npm_ci,) = [i for i in dockerfile() if i.keyword == "RUN" and "npm ci" in i.args]
        assert npm_ci.stage == "ui"
        # Added to Node's roots while npm ci runs, and only when the bundle is there.
        assert f"if [ -s {CA_TARGET} ]; then export NODE_EXTRA_CA_CERTS={CA_TARGET}; fi" in (
            " ".join(npm_ci.args.split())
        )
        assert npm_ci.args.index("NODE_EXTRA_CA_CERTS") < npm_ci.args.index("npm ci")
        for i in dockerfile():
            if i.keyword in {"ENV", "ARG"}:
                assert "NODE_EXTRA_CA_CERTS" not in i.args, i

    def test_no_bundle_no_secret_and_podman_builds_on_the_hosts_network(self) -> None:
        argv = build_argv("podman", "plot-palette:t", BASES, None)
        assert "--secret" not in argv
        assert "--network=host" in argv

    def test_no_certificate_is_ever_copied_into_an_image(self) -> None:
        for i in dockerfile():
            if i.keyword in {"COPY", "ADD"}:
                assert not any("crt" in w or "cert" in w for w in i.words()), i.args
        envs = " ".join(i.args for i in dockerfile() if i.stage == "builder" and i.keyword == "ENV")
        assert "UV_SYSTEM_CERTS=1" in envs

    def test_base_images_are_the_dockerfiles_defaults_fully_named(self) -> None:
        args = dockerfile_args(DOCKERFILE.read_text(encoding="utf-8"))
        assert qualified(args["PYTHON_IMAGE"]) == "docker.io/library/python:3.12-slim-bookworm"
        assert qualified(args["UV_IMAGE"]).startswith("ghcr.io/astral-sh/uv:")
        assert qualified(args["NODE_IMAGE"]) == "docker.io/library/node:20-bookworm-slim"
        assert qualified("localhost/palette-uv:1") == "localhost/palette-uv:1"
        assert qualified("minio/mc:latest") == "docker.io/minio/mc:latest"


class TestBaseScript:
    def test_its_arguments_are_in_the_order_its_usage_line_reads_them(self) -> None:
        argv = base_script_argv(
            "podman", BASES, Path("/py/bin/python3.12"), Path("/uv/uv"), Path("/usr/bin/node")
        )
        script = BASE_SCRIPT.read_text(encoding="utf-8")
        (line,) = [ln for ln in script.splitlines() if ln.startswith("engine=$1 ")]
        positions = dict(pair.split("=$") for pair in line.split())
        given = {name: argv[int(n) - 1] for name, n in positions.items()}
        assert given == {
            "engine": "podman",
            "python_tag": BASES.python,
            "python": "/py/bin/python3.12",
            "uv_tag": BASES.uv,
            "uv": "/uv/uv",
            "node_tag": BASES.node,
            "node": "/usr/bin/node",
        }
        assert len(argv) == len(positions)


class TestWithoutAnEngine:
    def test_says_what_it_could_not_do_and_why_and_exits_2(self, tmp_path: Path) -> None:
        scratch = tmp_path / "tmp"
        scratch.mkdir()
        result = subprocess.run(
            [sys.executable, "-m", "tools.image", "--no-install"],
            cwd=ROOT,
            env={**os.environ, "PATH": str(tmp_path), "TMPDIR": str(scratch)},
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 2, result.stdout + result.stderr
        assert "docker: not installed" in result.stdout
        assert "podman: not installed (installing it was not allowed)" in result.stdout
        assert "Not done: the build, the size, the services' runs and the job" in result.stdout
        assert list(scratch.iterdir()) == [], "its work folder is left behind"


class TestMakeTargets:
    def dry_run(self, target: str) -> str:
        result = subprocess.run(
            ["make", "-n", target], cwd=ROOT, capture_output=True, text=True, check=True
        )
        return result.stdout

    def test_make_test_image_runs_the_tool(self) -> None:
        assert "python -m tools.image" in self.dry_run("test-image")

    def test_make_test_leaves_the_image_out(self) -> None:
        recipe = self.dry_run("test")
        assert "tools.image" not in recipe
        assert "pytest" in recipe


class TestPageCheck:
    def test_the_assets_are_those_the_built_page_loads(self) -> None:
        html = (
            '<script type="module" crossorigin src="/ui/assets/index-D1.js"></script>\n'
            '<link rel="stylesheet" crossorigin href="/ui/assets/index-B2.css">\n'
            '<a href="https://example.org/">x</a><div id="app"></div>'
        )
        assert page_assets(html) == ["/ui/assets/index-D1.js", "/ui/assets/index-B2.css"]


class TestBrokerCheck:
    """A broker that takes the TCP connection but never answers AMQP is told apart."""

    def serve(self, answer: bytes | None) -> tuple[socket.socket, threading.Thread]:
        server = socket.create_server(("127.0.0.1", 0))

        def handle() -> None:
            conn, _ = server.accept()
            with conn:
                conn.recv(8)
                if answer is not None:
                    conn.sendall(answer)
                else:
                    conn.recv(8)  # holds the connection until the client gives up

        thread = threading.Thread(target=handle, daemon=True)
        thread.start()
        return server, thread

    def test_an_answering_broker_passes(self) -> None:
        server, thread = self.serve(b"\x01\x00\x00\x00\x00\x01\xf4\x00")
        with server:
            port = server.getsockname()[1]
            assert amqp_answers(f"amqp://guest:guest@127.0.0.1:{port}/", timeout=10)
            thread.join(10)

    def test_a_silent_broker_fails_and_so_does_no_broker(self) -> None:
        server, thread = self.serve(None)
        with server:
            port = server.getsockname()[1]
            assert not amqp_answers(f"amqp://127.0.0.1:{port}/", timeout=0.5)
            thread.join(10)
        assert not amqp_answers(f"amqp://127.0.0.1:{port}/", timeout=0.5)
