"""Modules and functions of the services and libraries stay small, or say why not.

Read from the code without running it: every ``.py`` under ``services/*/src`` and
``libs/*/src`` is parsed with ``ast``. A module over ``MODULE_LINES`` lines, or a
function over ``FUNCTION_LINES`` lines, needs its docstring (the module's docstring
for a module) to give the reason, in a paragraph starting ``Long because``.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.files import ROOT

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(60)]

MODULE_LINES = 350
FUNCTION_LINES = 60
REASON = "Long because"
SOURCES = [*sorted((ROOT / "services").glob("*/src")), *sorted((ROOT / "libs").glob("*/src"))]


def modules() -> list[Path]:
    """Every Python module of the services' and libraries' source trees."""
    return [path for source in SOURCES for path in sorted(source.rglob("*.py"))]


@functools.cache
def parsed(path: Path) -> tuple[int, ast.Module]:
    """A module's number of lines and its syntax tree."""
    text = path.read_text(encoding="utf-8")
    return len(text.splitlines()), ast.parse(text, filename=str(path))


def gives_reason(node: ast.Module | ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    """Whether the node's docstring gives a reason for its length."""
    return REASON in (ast.get_docstring(node) or "")


def functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    """Every function of a module, methods and nested functions included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def long_modules() -> list[str]:
    """``path (N lines)`` of each module over the limit without a reason."""
    found = []
    for path in modules():
        lines, tree = parsed(path)
        if lines > MODULE_LINES and not gives_reason(tree):
            found.append(f"{path.relative_to(ROOT)} ({lines} lines)")
    return found


def long_functions() -> list[str]:
    """``path:line name (N lines)`` of each function over the limit without a reason."""
    found = []
    for path in modules():
        _lines, tree = parsed(path)
        for node in functions(tree):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > FUNCTION_LINES and not gives_reason(node):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    return found


class TestCodeShape:
    """The size limits of the conventions hold in ``services/`` and ``libs/``."""

    def test_the_scan_sees_every_service_and_library(self) -> None:
        """The source trees are found, so an empty scan cannot pass by accident."""
        found = {path.relative_to(ROOT).parts[:2] for path in modules()}
        for service in ("gateway", "scheduler", "generator", "accounting"):
            assert ("services", service) in found
        assert ("libs", "common") in found

    def test_no_module_is_long_without_a_reason(self) -> None:
        """A module over the limit says, in its docstring, why it is long."""
        found = long_modules()
        assert not found, (
            f"modules over {MODULE_LINES} lines without '{REASON}' in their docstring:\n"
            + "\n".join(found)
        )

    def test_no_function_is_long_without_a_reason(self) -> None:
        """A function over the limit says, in its docstring, why it is long."""
        found = long_functions()
        assert not found, (
            f"functions over {FUNCTION_LINES} lines without '{REASON}' in their docstring:\n"
            + "\n".join(found)
        )
