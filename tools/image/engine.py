"""The container engine of ``make test-image``: Docker where an engine answers, else podman.

Podman is installed with ``tools/image/install-podman.sh`` (Debian's podman, runc,
debootstrap) when neither is there, and runs with a ``containers.conf`` of its
own (``CONTAINERS_CONF``, nothing of the machine's is changed): runc as the
runtime, and open-file and process limits within this machine's. Podman's own
defaults for root ask for more than a machine may allow without
``CAP_SYS_RESOURCE`` (runc then fails with ``error setting rlimit type 7``).
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
INSTALL_PODMAN = HERE / "install-podman.sh"
# Podman caps its own RLIMIT_NPROC at this as root (seen with Debian's podman 4.3),
# and a container cannot have more than the conmon podman starts for it.
PODMAN_NPROC_CAP = 32768
# Podman's own default for root, used where the machine sets no open-file limit.
OPEN_FILES_IF_UNLIMITED = 1048576


class NoEngineError(RuntimeError):
    """No container engine could be found or installed; ``reasons`` says why, one per try."""

    def __init__(self, reasons: list[str]) -> None:
        self.reasons = reasons
        super().__init__("; ".join(reasons))


@dataclass(frozen=True, slots=True)
class Engine:
    """A container engine's command line (``docker`` or ``podman``) and its environment."""

    name: str
    program: str
    env: dict[str, str] = field(default_factory=dict)

    def run(
        self, *args: str, timeout: float = 120, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run ``<engine> args``; output captured; raise with stderr on failure when ``check``."""
        result = subprocess.run(
            [self.program, *args],
            env=self.environ(),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"{self.name} {' '.join(args[:3])} ...: exit {result.returncode}: "
                f"{(result.stderr or result.stdout).strip()[-2000:]}"
            )
        return result

    def environ(self) -> dict[str, str]:
        """The process environment with this engine's own settings on top."""
        return {**os.environ, **self.env}

    def version(self) -> str:
        """What ``<engine> --version`` prints."""
        return self.run("--version").stdout.strip()


def containers_conf(nofile_hard: int, nproc_hard: int) -> str:
    """Podman's settings for this machine: runc, and limits no higher than its hard ones.

    Args:
        nofile_hard: this process's hard open-file limit (``RLIM_INFINITY`` if none).
        nproc_hard: this process's hard process limit (``RLIM_INFINITY`` if none).
    """
    files = OPEN_FILES_IF_UNLIMITED if nofile_hard == resource.RLIM_INFINITY else nofile_hard
    procs = PODMAN_NPROC_CAP
    if nproc_hard != resource.RLIM_INFINITY:
        procs = min(nproc_hard, PODMAN_NPROC_CAP)
    return (
        "# Written by tools/image (make test-image): podman as this machine allows it.\n"
        "[containers]\n"
        f'default_ulimits = ["nofile={files}:{files}", "nproc={procs}:{procs}"]\n'
        "\n[engine]\n"
        'runtime = "runc"\n'
    )


def _docker(reasons: list[str]) -> Engine | None:
    docker = shutil.which("docker")
    if docker is None:
        reasons.append("docker: not installed")
        return None
    info = subprocess.run([docker, "info"], capture_output=True, text=True, check=False, timeout=60)
    if info.returncode == 0:
        return Engine("docker", docker)
    said = (info.stderr or info.stdout).strip().splitlines()
    reasons.append(
        "docker: the client is installed but no engine answers" + (f" ({said[-1]})" if said else "")
    )
    return None


def _podman(work: Path, reasons: list[str], *, install: bool) -> Engine | None:
    podman = shutil.which("podman")
    if podman is None and install:
        done = subprocess.run(
            [shutil.which("sh") or "/bin/sh", str(INSTALL_PODMAN)],
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            reasons.append(f"podman: not installed, and {INSTALL_PODMAN.name} failed: {tail}")
            return None
        podman = shutil.which("podman")
    if podman is None:
        reasons.append(
            "podman: not installed" + ("" if install else " (installing it was not allowed)")
        )
        return None
    if shutil.which("runc") is None:
        reasons.append("podman: installed, but runc is not (apt-get install runc)")
        return None
    conf = work / "containers.conf"
    conf.write_text(
        containers_conf(
            resource.getrlimit(resource.RLIMIT_NOFILE)[1],
            resource.getrlimit(resource.RLIMIT_NPROC)[1],
        ),
        encoding="utf-8",
    )
    engine = Engine("podman", podman, {"CONTAINERS_CONF": str(conf)})
    info = engine.run("info", check=False)
    if info.returncode != 0:
        reasons.append(f"podman: installed but `podman info` fails: {info.stderr.strip()[-500:]}")
        return None
    return engine


def find_engine(work: Path, *, install: bool = True) -> Engine:
    """Docker if its engine answers, else podman (installed first when allowed and missing).

    Raises:
        NoEngineError: neither works; each reason names the engine and what failed.
    """
    reasons: list[str] = []
    engine = _docker(reasons) or _podman(work, reasons, install=install)
    if engine is None:
        raise NoEngineError(reasons)
    return engine
