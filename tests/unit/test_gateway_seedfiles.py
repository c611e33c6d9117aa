"""Seed file names, key ownership and validation of the gateway."""

from __future__ import annotations

import io

import pytest

from palette.common.seeds import SeedError, SeedFormat
from palette.gateway.seedfiles import (
    MAX_FILENAME_CHARS,
    detect_format,
    first_missing,
    owns_seed_key,
    sanitize_filename,
    validate_seed_file,
)

pytestmark = pytest.mark.unit


class TestSanitizeFilename:
    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("seeds.jsonl", "seeds.jsonl"),
            ("../../etc/passwd", "passwd"),
            ("..\\..\\win.csv", "win.csv"),
            ("a/b/c.json", "c.json"),
            ("my seeds (v2).jsonl", "my_seeds_v2_.jsonl"),
            ("x..jsonl", "x.jsonl"),
            ("...hidden.csv", "hidden.csv"),
            ("-rf.csv", "rf.csv"),
            ("naïve.jsonl", "na_ve.jsonl"),
            ("trailing.", "trailing"),
            ("名前.csv", "seeds-0163f14d.csv"),
            ("семена 🎉.jsonl", "seeds-7e2ed688.jsonl"),
        ],
    )
    def test_keeps_a_safe_final_component(self, name: str, expected: str) -> None:
        assert sanitize_filename(name) == expected

    @pytest.mark.parametrize("name", ["", "..", "../", "/", "...", "  "])
    def test_rejects_names_with_nothing_safe_left(self, name: str) -> None:
        with pytest.raises(ValueError, match="empty"):
            sanitize_filename(name)

    def test_never_leaves_dot_dot_or_slashes(self) -> None:
        for name in ["a/../b", "..a..b..", "a\\..\\b", "%2e%2e/x"]:
            safe = sanitize_filename(name)
            assert ".." not in safe
            assert "/" not in safe
            assert "\\" not in safe

    def test_caps_long_names_and_keeps_the_extension(self) -> None:
        safe = sanitize_filename("x" * 500 + ".jsonl")
        assert len(safe) == MAX_FILENAME_CHARS
        assert safe.endswith(".jsonl")


class TestSeedKeyOwnership:
    def test_accepts_a_file_directly_under_the_owner_prefix(self) -> None:
        assert owns_seed_key("alice", "seed-data/alice/s.jsonl")

    @pytest.mark.parametrize(
        "key",
        [
            "seed-data/bob/s.jsonl",
            "seed-data/alice/../bob/s.jsonl",
            "seed-data/alice/sub/s.jsonl",
            "seed-data/alice/",
            "seed-data/alicex/s.jsonl",
            "s.jsonl",
        ],
    )
    def test_refuses_anything_else(self, key: str) -> None:
        assert not owns_seed_key("alice", key)


class TestValidateSeedFile:
    def test_counts_jsonl_records(self) -> None:
        file = io.BytesIO(b'{"a": 1}\n\n{"a": 2}\n')
        fmt = detect_format(file, "s.jsonl")
        assert fmt is SeedFormat.JSONL
        assert validate_seed_file(file, fmt) == 2
        assert file.tell() == 0

    def test_sniffs_the_format_without_a_known_extension(self) -> None:
        file = io.BytesIO(b'[{"a": 1}, {"a": 2}, {"a": 3}]')
        fmt = detect_format(file, "seeds.txt")
        assert fmt is SeedFormat.JSON
        assert validate_seed_file(file, fmt) == 3

    def test_reports_line_and_record_of_the_first_problem(self) -> None:
        file = io.BytesIO(b'{"a": 1}\n{"a": \n')
        with pytest.raises(SeedError) as info:
            validate_seed_file(file, SeedFormat.JSONL)
        assert (info.value.line, info.value.record) == (2, 2)

    def test_rejects_an_empty_file(self) -> None:
        with pytest.raises(SeedError):
            detect_format(io.BytesIO(b"   "), "x.txt")


class TestFirstMissing:
    def test_names_the_record_and_its_missing_fields(self) -> None:
        records = [{"topic": "a", "persona": {"name": "x"}}, {"topic": "b", "persona": {}}]
        assert first_missing(records, ["persona.name", "topic"], 10) == (2, ["persona.name"])

    def test_checks_only_the_leading_records(self) -> None:
        records = [{"topic": "a"}] * 3 + [{}]
        assert first_missing(records, ["topic"], 3) is None
        assert first_missing(records, ["topic"], 4) == (4, ["topic"])

    def test_no_requirements_means_nothing_missing(self) -> None:
        assert first_missing([{}, {}], [], 10) is None
