"""Parsing ``PALETTE_FAILPOINTS`` (pure logic)."""

from __future__ import annotations

import pytest

from palette.common.failpoints import FailpointError, Rule, parse

pytestmark = pytest.mark.unit


def test_entries_with_and_without_probability() -> None:
    assert parse("accounting.after_write=kill:0.25, generator.before_ack=kill") == {
        "accounting.after_write": Rule("kill", 0.25),
        "generator.before_ack": Rule("kill", 1.0),
    }


def test_a_sleep_entry_carries_its_seconds() -> None:
    assert parse("scheduler.before_reserve=sleep:12") == {
        "scheduler.before_reserve": Rule("sleep", 12.0)
    }


def test_a_raise_entry_carries_its_probability() -> None:
    assert parse("scheduler.before_export_request=raise, x=raise:0.5") == {
        "scheduler.before_export_request": Rule("raise", 1.0),
        "x": Rule("raise", 0.5),
    }


def test_empty_arms_nothing() -> None:
    assert parse("") == {}
    assert parse(" , ") == {}


@pytest.mark.parametrize(
    ("spec", "names"),
    [
        ("accounting.after_write", "not name=kill"),
        ("x=explode:0.5", "not name=kill"),
        ("=kill", "not name=kill"),
        ("x=sleep", "positive number of seconds"),
        ("x=sleep:-1", "positive number of seconds"),
        ("x=sleep:soon", "'soon' is not a number"),
        ("x=kill:often", "'often' is not a number"),
        ("x=kill:0", "must be in (0, 1]"),
        ("x=kill:1.5", "must be in (0, 1]"),
        ("x=raise:2", "must be in (0, 1]"),
    ],
)
def test_malformed_entries_are_refused_with_the_reason(spec: str, names: str) -> None:
    with pytest.raises(FailpointError, match=r"PALETTE_FAILPOINTS") as caught:
        parse(spec)
    assert names in str(caught.value)
