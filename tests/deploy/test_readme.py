"""The README's commands work as written in a new user's shell, from a fresh clone.

A fresh clone (``git clone`` of this repository) gets ``make install`` in a clean
environment, ``env -i HOME=$HOME PATH=/usr/local/bin:/usr/bin:/bin bash -l``: a
new login shell as this machine gives one, without ``~/.local/bin`` on its PATH
and so without uv. Then, in that environment, each ``sh`` block of the README
runs under a DEBUG trap that lets the safe commands run (``palette-token``)
and, for every other command, checks that the shell finds its program instead
of running it. Every entry point of the project answers ``--help`` (a service,
which takes no arguments, loads). The README also names every route of the API
and says where the services' environment comes from.
"""

from __future__ import annotations

import os
import re
import subprocess
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from tests.deploy.files import ROOT, SERVICES

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(300)]

README = ROOT / "README.md"
FRESH_PATH = "/usr/local/bin:/usr/bin:/bin"
# Commands of the README that run for real here; any other is only looked up.
SAFE = (".venv/bin/palette-token",)
JWT = re.compile(r"^ey[\w-]+\.[\w-]+\.[\w-]+$", re.MULTILINE)

# Each simple command first goes through __readme_gate (bash's DEBUG trap with
# extdebug: a non-zero answer skips the command). Assignments pass (what they
# run in $(...) is gated in turn: set -T); the program of every other command
# is looked up and reported; only SAFE ones run. ERR reports a command that ran
# and failed (a skipped one fails too, by design: __readme_skipped tells them apart).
GATE = r"""
exec 3>>"$README_REPORT"
shopt -s extdebug
set -T
__readme_gate() {
    local cmd=$1 word
    __readme_skipped=
    while [[ $cmd =~ ^[A-Za-z_][A-Za-z0-9_]*=([^[:space:]\$\(]*)([[:space:]]+|$) ]]; do
        cmd=${cmd:${#BASH_REMATCH[0]}}
    done
    if [[ -z $cmd || $cmd =~ ^[A-Za-z_][A-Za-z0-9_]*=\$\( ]]; then return 0; fi
    word=${cmd%%[[:space:]]*}
    __readme_skipped=1
    if ! type -t -- "$word" >/dev/null 2>&1; then echo "MISSING $word" >&3; return 1; fi
    case " $README_SAFE " in *" $word "*) echo "RAN $cmd" >&3; __readme_skipped=; return 0 ;; esac
    echo "SKIPPED $word" >&3
    return 1
}
trap '[[ -n $__readme_skipped ]] || echo "FAILED $BASH_COMMAND" >&3' ERR
trap '__readme_gate "$BASH_COMMAND"' DEBUG
"""


def shell_blocks(text: str) -> list[str]:
    """The ``sh`` code blocks of a Markdown text."""
    return re.findall(r"^```(?:sh|bash|shell)\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def code(text: str) -> list[str]:
    """Every piece of code a Markdown text shows: its blocks' lines and its inline spans."""
    lines = [line for block in shell_blocks(text) for line in block.splitlines()]
    outside = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    return lines + re.findall(r"`([^`\n]+)`", outside)


def fresh_shell(
    cwd: Path, script: str, report: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a new login shell with a clean environment, in ``cwd``."""
    file = cwd / ".readme-test.sh"
    file.write_text(script, encoding="utf-8")
    env = [f"HOME={os.environ['HOME']}", f"PATH={FRESH_PATH}"]
    if report is not None:
        env += [f"README_REPORT={report}", f"README_SAFE={' '.join(SAFE)}"]
    return subprocess.run(
        ["/usr/bin/env", "-i", *env, "bash", "-l", str(file)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=240,
    )


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone of this repository after ``make install`` in a fresh shell."""
    dest = tmp_path_factory.mktemp("readme") / "plot-palette"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(dest)], check=True, timeout=120)
    installed = fresh_shell(dest, "make install\n")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return dest


def gated(
    clone: Path, block: str, tmp_path: Path
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    report = tmp_path / "report.txt"
    report.write_text("", encoding="utf-8")
    result = fresh_shell(clone, GATE + block, report)
    return result, report.read_text(encoding="utf-8").splitlines()


@pytest.mark.long
class TestReadmeCommands:
    def test_every_shell_block_finds_its_programs_and_runs_its_safe_commands(
        self, clone: Path, tmp_path: Path
    ) -> None:
        blocks = shell_blocks(README.read_text(encoding="utf-8"))
        assert len(blocks) >= 3
        ran = []
        for block in blocks:
            syntax = subprocess.run(
                ["bash", "-n"], input=block, capture_output=True, text=True, check=False
            )
            assert syntax.returncode == 0, f"not valid shell:\n{block}\n{syntax.stderr}"
            result, report = gated(clone, block, tmp_path)
            missing = [line for line in report if line.startswith(("MISSING", "FAILED"))]
            assert not missing, f"{missing} in a fresh shell:\n{block}\n{result.stderr}"
            ran += [line for line in report if line.startswith("RAN")]
            if any(line.startswith("RAN .venv/bin/palette-token") for line in report):
                assert JWT.search(result.stdout), result.stdout + result.stderr
        assert ran, "the README runs palette-token: nothing ran"

    def test_the_gate_reports_a_missing_program_and_a_failed_safe_command(
        self, clone: Path, tmp_path: Path
    ) -> None:
        _, report = gated(
            clone,
            "uv run palette-token --sub alice\n.venv/bin/palette-token --sub 'a b!'\n",
            tmp_path,
        )
        assert "MISSING uv" in report
        assert any(line.startswith("FAILED") for line in report), report

    def test_the_readme_tells_no_one_to_type_uv(self) -> None:
        commands = [c for c in code(README.read_text(encoding="utf-8")) if re.match(r"\s*uv\s", c)]
        assert not commands, f"uv is not on a new shell's PATH: {commands}"

    def test_every_make_target_the_readme_names_exists(self, clone: Path) -> None:
        targets = set()
        for snippet in code(README.read_text(encoding="utf-8")):
            targets |= set(re.findall(r"(?:^|\s)make ([a-z][a-z0-9-]*)", snippet))
        assert {"demo", "test", "test-image"} <= targets
        listed = fresh_shell(clone, "make help\n")
        assert listed.returncode == 0, listed.stderr
        defined = {line.split()[0] for line in listed.stdout.splitlines() if line.strip()}
        assert targets <= defined, targets - defined

    def test_every_entry_point_answers_help_or_loads(self, clone: Path) -> None:
        scripts = {
            ep.name: ep.value
            for ep in entry_points(group="console_scripts")
            if ep.value.startswith("palette.")
        }
        services = {f"palette-{s}" for s in SERVICES}
        assert services < set(scripts)
        for name in sorted(set(scripts) - services):
            result = fresh_shell(clone, f".venv/bin/{name} --help\n")
            assert result.returncode == 0, f"{name} --help: {result.stderr}"
            assert "usage" in result.stdout.lower(), result.stdout
        module_of = {name: scripts[name].split(":")[0] for name in services}
        loads = "; ".join(f"import {module}" for module in module_of.values())
        result = fresh_shell(clone, f'.venv/bin/python -c "{loads}"\n')
        assert result.returncode == 0, result.stderr
        for name in services:
            found = fresh_shell(clone, f"type -P .venv/bin/{name}\n")
            assert found.returncode == 0, f"{name} is not installed in .venv/bin"


def api_paths() -> set[str]:
    """The gateway's routes, parameters written ``{}`` (the OpenAPI pages aside)."""
    from palette.gateway.app import create_app

    paths = {re.sub(r"\{[^}]*\}", "{}", route.path) for route in create_app().routes}
    return {p for p in paths if not p.startswith("/schema/")}


class TestReadmeApi:
    def test_names_every_route_of_the_api(self) -> None:
        text = re.sub(r"\{[^}]*\}", "{}", README.read_text(encoding="utf-8"))
        named = set(re.findall(r"`(/[^`\s]*)`", text))
        missing = api_paths() - named
        assert not missing, f"routes the README does not name: {sorted(missing)}"
        assert "`/schema`" in README.read_text(encoding="utf-8")

    def test_says_how_a_service_gets_the_dev_stacks_environment(self) -> None:
        text = README.read_text(encoding="utf-8")
        loading = [b for b in shell_blocks(text) if ". .devstack/env" in b]
        assert loading, "no block loads .devstack/env"
        assert "set -a" in loading[0]
        assert ".venv/bin/palette-gateway" in loading[0]
