"""``--job`` and ``--set``: more job fields for ``palette run`` and ``palette jobs create``."""

from __future__ import annotations

from pathlib import Path

import pytest

from palette.cli.job_options import JobOptionsError, job_extras, parse_set

pytestmark = pytest.mark.unit


class TestSet:
    def test_a_value_that_parses_as_json_is_json_else_text(self) -> None:
        assert parse_set("max_generated=300") == ("max_generated", 300)
        assert parse_set("target=kept") == ("target", "kept")
        assert parse_set('dedup={"field": "steps.q.output", "mode": "near"}') == (
            "dedup",
            {"field": "steps.q.output", "mode": "near"},
        )
        assert parse_set("keep_if=steps.grade.output.score >= 4") == (
            "keep_if",
            "steps.grade.output.score >= 4",
        )

    @pytest.mark.parametrize("item", ["target", "=kept", " =1"])
    def test_without_a_field_and_an_equals_sign_it_says_what_it_expects(self, item: str) -> None:
        with pytest.raises(JobOptionsError, match="expected FIELD=VALUE"):
            parse_set(item)


class TestJobExtras:
    def test_a_yaml_file_then_sets_applied_in_order(self, tmp_path: Path) -> None:
        path = tmp_path / "job.yaml"
        path.write_text("target: kept\nmax_generated: 90\nmode: online\n")
        extras = job_extras(path, ["max_generated=120", "service_tier=flex"])
        assert extras == {
            "target": "kept",
            "max_generated": 120,
            "mode": "online",
            "service_tier": "flex",
        }

    def test_a_json_file(self, tmp_path: Path) -> None:
        path = tmp_path / "job.json"
        path.write_text('{"dedup": {"field": "steps.q.output", "mode": "exact"}}')
        assert job_extras(path, []) == {"dedup": {"field": "steps.q.output", "mode": "exact"}}

    def test_the_commands_own_fields_are_refused_by_name(self, tmp_path: Path) -> None:
        with pytest.raises(JobOptionsError, match="--set sets budget_usd, num_records"):
            job_extras(None, ["num_records=5", "budget_usd=9"])
        path = tmp_path / "job.json"
        path.write_text('{"seed_key": "seed-data/x.jsonl"}')
        with pytest.raises(JobOptionsError, match=r"job.json sets seed_key"):
            job_extras(path, [])

    def test_a_file_that_is_not_an_object_or_not_there_is_named(self, tmp_path: Path) -> None:
        path = tmp_path / "job.json"
        path.write_text("[1, 2]")
        with pytest.raises(JobOptionsError, match="must be an object of job fields"):
            job_extras(path, [])
        with pytest.raises(JobOptionsError, match="cannot read the job options"):
            job_extras(tmp_path / "missing.yaml", [])
