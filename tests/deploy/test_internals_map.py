"""docs/internals.md's map names every message, queue and collection the code has.

Read from the code without running it: the message contracts of
``palette.common.messages``, the queues of ``palette.common.topology``, who
constructs each message (an AST scan of each service's source) and which
collections the source opens (a subscript of a database with a name).
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from palette.common import messages as m
from palette.common.job_document import job_document
from palette.common.topology import Queues
from tests.deploy.files import ROOT, SERVICES

pytestmark = [pytest.mark.deploy, pytest.mark.timeout(60)]

INTERNALS = ROOT / "docs" / "internals.md"
SOURCES = [*sorted((ROOT / "services").glob("*/src")), *sorted((ROOT / "libs").glob("*/src"))]
DATABASE = re.compile(r"(^|\.)_?(db|database)$|^client\[.*\]$")
"""How the source names a database it subscripts with a collection name."""


def contracts() -> dict[str, type[m.Message]]:
    """Every message contract: the ``Message`` subclasses of ``palette.common.messages``."""
    return {
        name: cls
        for name, cls in inspect.getmembers(m, inspect.isclass)
        if issubclass(cls, m.Message) and cls is not m.Message
    }


@functools.cache
def tables() -> dict[str, list[list[str]]]:
    """The markdown tables of the map section, by their first header cell: rows of cells."""
    text = INTERNALS.read_text(encoding="utf-8")
    section = text.split("\n## Map", 1)[1].split("\n## ", 1)[0]
    found: dict[str, list[list[str]]] = {}
    current: list[list[str]] = []
    for line in [*section.splitlines(), ""]:
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip().strip("|").split(" | ")])
        elif current:
            header, _rule, *body = current
            assert all(len(row) == len(header) for row in body), f"a row of {header} is cut"
            found[header[0]] = body
            current = []
    return found


def rows(first_header_cell: str) -> dict[str, list[str]]:
    """The rows of the map's table whose first header cell is given, by their first cell."""
    table = tables().get(first_header_cell)
    assert table, f"docs/internals.md's map has no table headed {first_header_cell!r}"
    return {row[0].strip("`"): row for row in table}


def modules() -> Iterator[tuple[Path, ast.Module]]:
    for source in SOURCES:
        for path in sorted(source.rglob("*.py")):
            yield path, ast.parse(path.read_text(encoding="utf-8"), str(path))


def string_constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "text"`` assignments."""
    out = {}
    for node in tree.body:
        value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            out.update({t.id: value.value for t in targets if isinstance(t, ast.Name)})
    return out


def collections_in_code() -> dict[str, set[str]]:
    """Collection name -> files that open it (``db["name"]``, ``self._db[NAME]``, ...)."""
    parsed = list(modules())
    everywhere: dict[str, set[str]] = {}
    for _, tree in parsed:
        for name, value in string_constants(tree).items():
            everywhere.setdefault(name, set()).add(value)
    found: dict[str, set[str]] = {}
    for path, tree in parsed:
        local = string_constants(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Subscript) or not DATABASE.search(ast.unparse(node.value)):
                continue
            key = node.slice
            name: str | None = None
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                name = key.value
            elif isinstance(key, ast.Name):
                values = {local[key.id]} if key.id in local else everywhere.get(key.id, set())
                assert len(values) == 1, f"{path}: cannot tell which collection {key.id} is"
                name = next(iter(values))  # not pop(): the set is shared by every module
            if name is not None:
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def producers_in_code() -> dict[str, set[str]]:
    """Message contract -> services whose source constructs it."""
    names = set(contracts())
    found: dict[str, set[str]] = {}
    for path, tree in modules():
        parts = path.relative_to(ROOT).parts
        if parts[0] != "services":
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                func = node.func
                called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if called in names:
                    found.setdefault(called, set()).add(parts[1])
    return found


def services_named(cell: str) -> set[str]:
    return {service for service in SERVICES if re.search(rf"\b{service}\b", cell)}


class TestMessageMap:
    def test_every_message_contract_has_a_row_and_every_row_a_contract(self) -> None:
        assert set(rows("contract")) == set(contracts())

    def test_every_queue_is_named_in_its_messages_row_with_its_consuming_service(self) -> None:
        table = rows("contract")
        for spec in Queues.all():
            consumers = table[spec.message.__name__][3]
            assert f"`{spec.name}`" in consumers, f"{spec.name} is not in the map"
            assert spec.name.split(".")[0] in services_named(consumers)

    def test_the_map_names_no_queue_that_does_not_exist(self) -> None:
        queues = {spec.name: spec.message.__name__ for spec in Queues.all()}
        for contract, row in rows("contract").items():
            for name in re.findall(r"`([a-z]+\.[a-z-]+)`", row[3]):
                assert queues.get(name) == contract, f"{contract}: no queue {name} takes it"

    def test_each_messages_producers_are_the_services_that_construct_it(self) -> None:
        table = rows("contract")
        for contract, services in producers_in_code().items():
            assert services_named(table[contract][2]) == services, contract


class TestCollectionMap:
    def test_every_collection_the_code_opens_has_a_row_and_every_row_one_in_code(self) -> None:
        in_code = collections_in_code()
        assert {"jobs", "leases", "claims"} <= set(in_code)  # the scan sees the code
        assert set(rows("collection")) == set(in_code)

    def test_every_row_names_its_writer_and_readers_among_the_services(self) -> None:
        for collection, row in rows("collection").items():
            assert services_named(row[1]), f"{collection}: no writer"
            assert services_named(row[2]), f"{collection}: no reader"

    def test_every_field_of_the_job_document_is_in_the_jobs_row(self) -> None:
        submit = m.SubmitJob(
            job_id="j",
            owner="o",
            template={"steps": [{"id": "a", "model": "m", "prompt": "p"}]},
            seed_key="k",
            num_records=1,
            budget_usd=1,
        )
        doc = job_document(
            submit, schema_requirements=[], now=datetime.now(UTC), submit_published=True
        )
        fields = rows("collection")["jobs"][3]
        assert [name for name in doc if f"`{name}`" not in fields] == []
