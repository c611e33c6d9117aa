"""The palette command's pure logic: colours, estimates, problem text, the dataset card."""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from rich.console import Console

from palette.cli.api import ApiError
from palette.cli.cmd_jobs import _show
from palette.cli.dataset import DatasetSummary, card_text, size_category
from palette.cli.live import cost_style, line, render
from palette.cli.runjob import _same_steps, estimate

pytestmark = pytest.mark.unit


class TestCostBarColour:
    @pytest.mark.parametrize(
        ("percent", "style"),
        [
            (0.0, "green"),
            (74.99, "green"),
            (75.0, "yellow"),
            (89.9, "yellow"),
            (90.0, "dark_orange"),
            (100.0, "dark_orange"),
        ],
    )
    def test_turns_yellow_at_75_and_orange_at_90_percent(self, percent: float, style: str) -> None:
        assert cost_style(percent) == style


class TestEstimate:
    def test_is_the_previews_job_level_estimate(self) -> None:
        guess = estimate(
            {"worst_case_usd": "0.01", "estimate": {"worst_case_usd": "3.5", "mean_usd": "1.25"}},
            500,
        )
        assert (guess.worst_case_usd, guess.expected_usd) == (Decimal("3.5"), Decimal("1.25"))

    def test_without_records_run_there_is_no_expected_cost(self) -> None:
        guess = estimate({"estimate": {"worst_case_usd": "1.077350000", "mean_usd": None}}, 500)
        assert guess.worst_case_usd == Decimal("1.077350000")
        assert guess.expected_usd is None


class TestProblemText:
    def test_shows_status_title_detail_and_each_field_error(self) -> None:
        error = ApiError(
            422,
            {
                "title": "Unprocessable Entity",
                "detail": "bad template",
                "errors": [{"field": "steps.0.model", "problem": "unknown model", "line": 3}],
            },
        )
        assert error.text() == (
            "HTTP 422 Unprocessable Entity: bad template\n"
            '  steps.0.model: unknown model {"line": 3}'
        )


class TestTemplateReuse:
    def test_same_steps_compares_the_fields_the_file_gives(self) -> None:
        stored = [{"id": "a", "model": "m", "prompt": "p", "max_tokens": 10, "system": None}]
        assert _same_steps([{"id": "a", "model": "m", "prompt": "p", "max_tokens": 10}], stored)
        assert not _same_steps([{"id": "a", "model": "m", "prompt": "q", "max_tokens": 10}], stored)
        assert not _same_steps([], stored)


class TestDatasetCard:
    def test_header_is_a_hugging_face_card_and_body_says_how_it_was_made(self) -> None:
        summary = DatasetSummary(
            Path("out/dataset.parquet"), 500, 1234, [("id", "string"), ("index", "int64")]
        )
        job = {
            "id": "j1",
            "status": "COMPLETED",
            "template_id": "t1",
            "template_version": 2,
            "seed_key": "seed-data/u/seeds.jsonl",
            "seed_count": 60,
            "records_done": 500,
            "num_records": 500,
            "cost_usd": "0.42",
            "budget_usd": "1",
            "created_at": "2026-01-01T00:00:00Z",
            "started_at": None,
            "finished_at": None,
        }
        template = {
            "name": "dialogues",
            "steps": [{"id": "q", "model": "amazon.nova-micro-v1:0", "prompt": "Ask {{ x }}"}],
        }
        text = card_text(summary, job, template, "seeds.jsonl")
        header = yaml.safe_load(text.split("---\n")[1])
        assert header["license"] == "other"
        assert header["size_categories"] == ["n<1K"]
        assert header["dataset_info"]["features"] == [
            {"name": "id", "dtype": "string"},
            {"name": "index", "dtype": "int64"},
        ]
        assert header["dataset_info"]["splits"] == [
            {"name": "train", "num_bytes": 1234, "num_examples": 500}
        ]
        assert header["configs"][0]["data_files"][0]["path"] == "dataset.parquet"
        for expected in (
            "amazon.nova-micro-v1:0",
            "`seeds.jsonl` (60 records)",
            "$0.42 of a $1",
            "Ask {{ x }}",
            "version 2",
        ):
            assert expected in text

    @pytest.mark.parametrize(
        ("records", "category"),
        [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (10**6, "1M<n<10M")],
    )
    def test_size_categories(self, records: int, category: str) -> None:
        assert size_category(records) == category


class TestPlainProgressLine:
    def test_names_status_records_cost_rate_and_eta(self) -> None:
        dash = {
            "status": "RUNNING",
            "progress": {"done": 10, "target": 500, "records_per_second": 2.5},
            "budget": {"spent_usd": "0.01", "limit_usd": "1", "percent_spent": 1.0},
            "timing": {"eta_seconds": 196},
            "tokens": {"calls": 30, "input": 1, "output": 2, "throttled": 3, "retried": 4},
        }
        assert line(dash) == (
            "RUNNING records 10/500 cost $0.01 of $1 (1.0 %) rate 2.5/s eta 0:03:16 "
            "throttled 3 retried 4"
        )

    def test_the_panel_shows_throttled_and_retried_attempts(self) -> None:
        dash = {
            "job_id": "job-1",
            "status": "RUNNING",
            "progress": {
                "done": 10,
                "target": 500,
                "percent": 2.0,
                "records_per_second": 2.5,
                "partitions_in_flight": 1,
                "partitions_paused": 2,
                "paused_reason": "model m throttled every call for 300 s",
            },
            "budget": {"spent_usd": "0.01", "limit_usd": "1", "percent_spent": 1.0},
            "timing": {"eta_seconds": 196},
            "tokens": {
                "calls": 30,
                "input": 1,
                "output": 2,
                "throttled": 3,
                "retried": 4,
                "quota_wait_seconds": 12.34,
            },
        }
        console = Console(width=120, record=True, file=io.StringIO())
        console.print(render(dash))
        text = console.export_text()
        assert "Retries" in text
        assert "3 throttled, 4 retried, 12.3 s waited for quota" in text
        assert "2 partitions: model m throttled every call for 300 s" in text


class TestShortOfTarget:
    """A ``target: "kept"`` job that completed short of its target says so in the CLI."""

    REASON = "short of target: kept 0 of 4 records; max_generated (6) allowed no more"

    def dashboard(self) -> dict[str, object]:
        return {
            "job_id": "job-1",
            "status": "COMPLETED",
            "progress": {
                "done": 6,
                "target": 4,
                "percent": 100.0,
                "records_per_second": None,
                "partitions_in_flight": 0,
                "short_of_target": True,
                "short_of_target_reason": self.REASON,
            },
            "budget": {"spent_usd": "0.01", "limit_usd": "1", "percent_spent": 1.0},
            "timing": {"eta_seconds": None},
            "tokens": {"calls": 6, "input": 1, "output": 2},
        }

    def test_the_panel_and_the_plain_line_show_it(self) -> None:
        console = Console(width=160, record=True, file=io.StringIO())
        console.print(render(self.dashboard()))
        assert self.REASON in console.export_text()
        assert line(self.dashboard()).endswith(" SHORT OF TARGET")

    def test_jobs_show_lists_the_reason(self, capsys: pytest.CaptureFixture[str]) -> None:
        job = {"id": "job-1", "status": "COMPLETED", "target": "kept", "records_kept": 0}
        _show({**job, "short_of_target": True, "short_of_target_reason": self.REASON})
        shown = capsys.readouterr().out
        assert "short_of_target_reason" in shown
        assert "kept 0 of 4 records" in shown
        _show({**job, "short_of_target": False})
        assert "short_of_target" not in capsys.readouterr().out
