"""Building the Dockerfile's image for ``make test-image``: its base images, then the image.

The base images are the Dockerfile's defaults (``PYTHON_IMAGE``, ``UV_IMAGE``,
``NODE_IMAGE``) where the engine can pull them. Where it cannot (no registry
reachable), they are made here by ``tools/image/base-images.sh`` (debootstrap from
Debian's mirror and this machine's CPython 3.12, uv, and Node.js with npm) and
imported, then kept for the next run.
"""

from __future__ import annotations

import os
import re
import shutil
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tools.image.engine import Engine

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
BASE_SCRIPT = Path(__file__).resolve().parent / "base-images.sh"
LOCAL_PYTHON = "localhost/palette-python:3.12-bookworm"
LOCAL_UV = "localhost/palette-uv:{version}"
LOCAL_NODE = "localhost/palette-node:{version}-bookworm"
# The build secret the Dockerfile mounts over the image's CA bundle for its uv and npm steps.
CA_SECRET = "ca-certificates"  # noqa: S105 - the name of a build secret, not one
# A build step's first line: podman's "[2/7] STEP 3/19: RUN ...", Docker's "#7 [builder 3/12] ...".
STEP_LINE = re.compile(r"STEP \d+/\d+: |^#\d+ \[")


@dataclass(frozen=True, slots=True)
class Bases:
    """The images the build's ``PYTHON_IMAGE``, ``UV_IMAGE`` and ``NODE_IMAGE`` arguments name."""

    python: str
    uv: str
    node: str
    how: str


def dockerfile_args(text: str) -> dict[str, str]:
    """The global ``ARG NAME=default`` lines of a Dockerfile (those before its first FROM)."""
    head = re.split(r"^FROM\s", text, maxsplit=1, flags=re.MULTILINE)[0]
    return dict(re.findall(r"^ARG\s+([A-Za-z_]+)=(\S+)", head, flags=re.MULTILINE))


def qualified(image: str) -> str:
    """A full reference, as podman needs: ``python:3`` -> ``docker.io/library/python:3``."""
    first = image.split("/", 1)[0]
    if "/" in image and ("." in first or ":" in first or first == "localhost"):
        return image
    return f"docker.io/{image if '/' in image else 'library/' + image}"


def ca_bundle() -> Path | None:
    """This machine's CA bundle (the one TLS here trusts), or None."""
    candidates = [
        os.environ.get("SSL_CERT_FILE"),
        ssl.get_default_verify_paths().openssl_cafile,
        "/etc/ssl/certs/ca-certificates.crt",
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def build_argv(engine: str, tag: str, bases: Bases, bundle: Path | None) -> list[str]:
    """The arguments of ``<engine> build`` for the image (the CA bundle as a secret, if any)."""
    argv = ["build", "-t", tag]
    images = {"PYTHON_IMAGE": bases.python, "UV_IMAGE": bases.uv, "NODE_IMAGE": bases.node}
    for arg, image in images.items():
        argv += ["--build-arg", f"{arg}={image}"]
    if bundle is not None:
        argv += ["--secret", f"id={CA_SECRET},src={bundle}"]
    if engine == "podman":
        # The build's steps reach Debian's mirror and PyPI as the host does.
        argv.append("--network=host")
    return [*argv, str(ROOT)]


def _exists(engine: Engine, image: str) -> bool:
    return engine.run("image", "inspect", image, check=False).returncode == 0


def _pull(engine: Engine, images: tuple[str, ...], timeout: float) -> list[str]:
    """Pull each image; what failed and why (empty when all came)."""
    failed = []
    for image in images:
        try:
            pulled = engine.run("pull", image, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            failed.append(f"{image}: no answer in {timeout:.0f} s")
            continue
        if pulled.returncode != 0:
            said = (pulled.stderr or pulled.stdout).strip().splitlines()
            failed.append(f"{image}: {said[-1].rsplit(': ', 1)[-1] if said else 'failed'}")
    return failed


def _version(program: Path) -> str:
    """What ``program --version`` says, as ``0.13.9``: ``uv 0.13.9 (...)``, ``v20.20.2``."""
    said = subprocess.run(
        [str(program), "--version"], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    return (said[1] if len(said) > 1 else said[0]).removeprefix("v")


def base_script_argv(program: str, bases: Bases, python: Path, uv: Path, node: Path) -> list[str]:
    """The arguments of ``base-images.sh``, in its usage line's order.

    That is ENGINE PYTHON_TAG PYTHON UV_TAG UV NODE_TAG NODE.
    """
    return [program, bases.python, str(python), bases.uv, str(uv), bases.node, str(node)]


def base_images(
    engine: Engine, uv: Path, node: Path | None, *, rebuild: bool, pull_timeout: float
) -> Bases:
    """The Dockerfile's default bases if the engine pulls them, else ones made here.

    Args:
        engine: the container engine.
        uv: the uv binary for the uv image made here.
        node: this machine's ``node`` (with npm beside it) for the Node image made here.
        rebuild: make them here anew even if they could be pulled or were made before.
        pull_timeout: seconds each pull may take.

    Raises:
        RuntimeError: they have to be made here and there is no ``node``.
    """
    defaults = dockerfile_args(DOCKERFILE.read_text(encoding="utf-8"))
    wanted = Bases(
        qualified(defaults["PYTHON_IMAGE"]),
        qualified(defaults["UV_IMAGE"]),
        qualified(defaults["NODE_IMAGE"]),
        how="pulled",
    )
    why = "asked for by --rebuild-base"
    if not rebuild:
        failed = _pull(engine, (wanted.python, wanted.uv, wanted.node), pull_timeout)
        if not failed:
            return wanted
        why = "could not pull " + "; ".join(failed)
    if node is None:
        raise RuntimeError(
            f"the base images have to be made here ({why[:300]}), and the Node.js image "
            "is made from this machine's node and npm, which are not on PATH"
        )
    local = Bases(
        LOCAL_PYTHON,
        LOCAL_UV.format(version=_version(uv)),
        LOCAL_NODE.format(version=_version(node)),
        how="",
    )
    if rebuild or not all(_exists(engine, image) for image in (local.python, local.uv, local.node)):
        print(f"  making the base images here ({why[:300]})", flush=True)
        subprocess.run(
            [
                shutil.which("bash") or "/bin/bash",
                str(BASE_SCRIPT),
                *base_script_argv(engine.program, local, Path(sys.executable), uv, node),
            ],
            env=engine.environ(),
            check=True,
            timeout=1800,
        )
        how = f"made here by {BASE_SCRIPT.name} ({why})"
    else:
        how = f"made here earlier by {BASE_SCRIPT.name} ({why})"
    return Bases(local.python, local.uv, local.node, how=how)


def build(engine: Engine, tag: str, bases: Bases, log: Path) -> None:
    """Build the image; each step's first line is shown when it starts, everything goes to ``log``.

    Raises:
        RuntimeError: the build failed (with the log's tail).
    """
    argv = [engine.program, *build_argv(engine.name, tag, bases, ca_bundle())]
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            argv,
            env=engine.environ(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            out.write(line)
            if STEP_LINE.search(line):
                print(f"   {time.monotonic() - started:4.0f}s {line.rstrip()[:104]}", flush=True)
        code = process.wait()
    if code != 0:
        tail = "".join(log.read_text(encoding="utf-8").splitlines(keepends=True)[-30:])
        raise RuntimeError(f"{engine.name} build failed (exit {code}; log {log}):\n{tail}")


def image_facts(engine: Engine, tag: str) -> tuple[int, str]:
    """The image's size in bytes and the user it runs as."""
    out = engine.run("image", "inspect", "--format", "{{.Size}} {{.Config.User}}", tag).stdout
    size, _, user = out.strip().partition(" ")
    return int(size), user
