"""Every command the Dockerfile, compose and the manifests run exists in the project.

Console scripts resolve through importlib.metadata's entry points (and load);
``python -m X`` resolves through importlib; ``python /opt/palette/probe.py``
is a file the image copies.
"""

from __future__ import annotations

import importlib.util
import json
from importlib.metadata import entry_points
from typing import Any

import pytest

from tests.deploy.files import (
    OVERLAYS,
    compose,
    dockerfile,
    of_kind,
    palette_containers,
    rendered,
)

pytestmark = pytest.mark.deploy

PROBE_IN_IMAGE = "/opt/palette/probe.py"


def commands() -> list[tuple[str, list[str]]]:
    """(where, argv) of every command the deployment files run in the project's images."""
    found: list[tuple[str, list[str]]] = []
    for instruction in dockerfile():
        if instruction.keyword == "CMD":
            found.append((f"Dockerfile {instruction.stage}", json.loads(instruction.args)))
    for name, spec in compose()["services"].items():
        build = spec.get("build")
        if not build:
            continue
        if "command" in spec:
            found.append((f"compose {name}", list(spec["command"])))
        test = spec.get("healthcheck", {}).get("test", [])
        if test[:1] == ["CMD"]:
            found.append((f"compose {name} healthcheck", test[1:]))
    for overlay in OVERLAYS:
        for dep, container in palette_containers(rendered(overlay)):
            found.append((f"{overlay} {dep}", container["command"]))
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                if "exec" in container.get(probe, {}):
                    found.append((f"{overlay} {dep} {probe}", container[probe]["exec"]["command"]))
    return found


def copied_into(stage: str) -> set[str]:
    """Destinations of the COPY instructions of a Dockerfile stage."""
    return {i.words()[-1] for i in dockerfile() if i.stage == stage and i.keyword == "COPY"}


def find_module(name: str) -> Any:
    """The module spec of ``name``, or None (a missing parent package included)."""
    try:
        return importlib.util.find_spec(name)
    except ModuleNotFoundError:
        return None


def resolve(argv: list[str]) -> Any:
    """Resolve a command to what it runs; raise AssertionError if it does not exist."""
    scripts = {ep.name: ep for ep in entry_points(group="console_scripts")}
    program = argv[0]
    if program == "python":
        if argv[1] == "-m":
            spec = find_module(argv[2] + ".__main__") or find_module(argv[2])
            assert spec is not None, f"no module {argv[2]}"
            return spec
        assert argv[1] == PROBE_IN_IMAGE, argv
        assert PROBE_IN_IMAGE in copied_into("runtime") | copied_into("bedrock-emulator")
        return argv[1]
    assert program in scripts, f"no console script {program!r}"
    return scripts[program].load()


class TestCommands:
    def test_every_command_resolves_in_the_project(self) -> None:
        found = commands()
        assert len(found) > 10
        problems = []
        for where, argv in found:
            try:
                resolve(argv)
            except (AssertionError, ImportError, AttributeError) as exc:
                problems.append(f"{where}: {argv}: {exc}")
        assert not problems, "\n".join(problems)

    def test_each_service_runs_its_own_entry_point(self) -> None:
        for overlay in OVERLAYS:
            for dep in of_kind(rendered(overlay), "Deployment"):
                [container] = dep["spec"]["template"]["spec"]["containers"]
                assert container["command"] == [f"palette-{dep['metadata']['name']}"]
        scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")}
        for service in ("gateway", "scheduler", "generator", "accounting"):
            assert scripts[f"palette-{service}"] == f"palette.{service}.__main__:main"
            assert importlib.util.find_spec(f"palette.{service}.__main__") is not None

    def test_resolution_refuses_what_does_not_exist(self) -> None:
        with pytest.raises(AssertionError):
            resolve(["palette-nonexistent"])
        with pytest.raises(AssertionError):
            resolve(["python", "-m", "palette.nonexistent"])
