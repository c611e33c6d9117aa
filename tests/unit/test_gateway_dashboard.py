"""Recent rates and the job dashboard (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from palette.common.ledger_view import LedgerView, Totals
from palette.common.quota_view import quota_uses
from palette.gateway.dashboard import build_dashboard
from palette.gateway.job_views import job_view
from palette.gateway.rates import RateTracker, average_rate

pytestmark = pytest.mark.unit

NOW = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
MICRO, HAIKU = "amazon.nova-micro-v1:0", "anthropic.claude-haiku-4-5-20251001-v1:0"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def job(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": "j1",
        "status": "RUNNING",
        "num_records": 1000,
        "records_done": 250,
        "budget_picos": 10 * 10**12,
        "created_at": NOW - timedelta(seconds=60),
        "started_at": NOW - timedelta(seconds=50),
        "finished_at": None,
        "partitions_total": 10,
        "slots": ["lease-a", None, "lease-b"],
        "template": {"steps": [{"id": "q", "model": MICRO}, {"id": "a", "model": HAIKU}]},
    }
    doc.update(changes)
    return doc


VIEW_FIELDS = {
    "owner": "u",
    "seed_key": "seed-data/u/s.jsonl",
    "budget_usd": "10",
    "output_format": "jsonl",
}


def ledger() -> LedgerView:
    view = LedgerView(
        budget=10 * 10**12,
        spent=2_500_000_000_000,
        reserved=500_000_000_000,
        calls=500,
        input_tokens=40_000,
        output_tokens=30_000,
    )
    view.by_model = {
        MICRO: Totals(cost=500_000_000_000, calls=250, input_tokens=10_000, output_tokens=10_000),
        HAIKU: Totals(cost=2 * 10**12, calls=250, input_tokens=30_000, output_tokens=20_000),
    }
    view.by_step = {
        "q": Totals(cost=500_000_000_000, calls=250),
        "a": Totals(cost=2 * 10**12, calls=250),
    }
    return view


class TestRateTracker:
    def test_rate_is_the_change_over_the_window(self) -> None:
        clock = Clock()
        rates = RateTracker(window=60, clock=clock)
        rates.observe("j", 100)
        clock.now = 10
        rates.observe("j", 150)
        assert rates.recent_rate("j") == pytest.approx(5.0)

    def test_old_samples_leave_the_window(self) -> None:
        clock = Clock()
        rates = RateTracker(window=30, clock=clock)
        rates.observe("j", 0)
        clock.now = 100
        rates.observe("j", 900)
        clock.now = 110
        rates.observe("j", 1000)
        assert rates.recent_rate("j") == pytest.approx(10.0)

    def test_no_rate_from_too_short_a_span(self) -> None:
        clock = Clock()
        rates = RateTracker(clock=clock)
        rates.observe("j", 1)
        assert rates.recent_rate("j") is None
        clock.now = 0.5
        rates.observe("j", 5)
        assert rates.recent_rate("j") is None
        assert rates.recent_rate("unknown") is None

    def test_average_rate_since_start(self) -> None:
        assert average_rate(100, NOW - timedelta(seconds=20), NOW) == 5.0
        assert average_rate(100, None, NOW) is None


class TestDashboard:
    def test_progress_budget_tokens_and_eta_from_the_recent_rate(self) -> None:
        board = build_dashboard(job(), ledger(), recent_rate=25.0, now=NOW)
        assert (board.progress.done, board.progress.target, board.progress.percent) == (
            250,
            1000,
            25.0,
        )
        assert board.progress.partitions_in_flight == 2
        assert board.budget.limit_usd == "10"
        assert (board.budget.spent_usd, board.budget.reserved_usd) == ("2.5", "0.5")
        assert (board.budget.remaining_usd, board.budget.percent_spent) == ("7", 25.0)
        assert (board.tokens.input, board.tokens.output, board.tokens.calls) == (
            40_000,
            30_000,
            500,
        )
        assert board.timing.eta_seconds == 30.0  # 750 left at 25/s
        assert board.timing.eta_at == NOW + timedelta(seconds=30)
        assert board.timing.elapsed_seconds == 50.0

    def test_without_recent_samples_the_average_since_start_is_used(self) -> None:
        board = build_dashboard(job(), ledger(), recent_rate=None, now=NOW)
        assert board.progress.records_per_second == 5.0
        assert board.timing.eta_seconds == 150.0

    def test_cost_lines_are_most_expensive_first_and_steps_name_their_model(self) -> None:
        board = build_dashboard(job(), ledger(), recent_rate=None, now=NOW)
        assert [line.name for line in board.cost_by_model] == [HAIKU, MICRO]
        assert [(line.name, line.model) for line in board.cost_by_step] == [
            ("a", HAIKU),
            ("q", MICRO),
        ]
        assert board.cost_by_model[0].cost_usd == "2"

    def test_a_finished_job_has_no_eta_left_and_a_queued_one_none(self) -> None:
        done = build_dashboard(
            job(status="COMPLETED", records_done=1000, finished_at=NOW), ledger(), None, NOW
        )
        assert done.timing.eta_seconds == 0.0
        queued = build_dashboard(
            job(status="QUEUED", records_done=0, started_at=None), LedgerView.empty(10), None, NOW
        )
        assert queued.timing.eta_seconds is None
        assert queued.progress.records_per_second is None
        assert queued.budget.remaining_usd == queued.budget.limit_usd

    def test_in_flight_falls_back_to_the_counter_without_slots(self) -> None:
        doc = job(in_flight=4)
        del doc["slots"]
        assert build_dashboard(doc, ledger(), None, NOW).progress.partitions_in_flight == 4

    def test_incomplete_records_are_counted_once_the_export_is_written(self) -> None:
        running = build_dashboard(job(), ledger(), None, NOW)
        assert (running.progress.done, running.progress.incomplete) == (250, None)
        export = {"status": "DONE", "key": "k", "records": 253, "incomplete": 3, "bytes": 9}
        stopped = job(status="BUDGET_EXCEEDED", records_done=250, export=export)
        board = build_dashboard(stopped, ledger(), None, NOW)
        assert (board.progress.done, board.progress.incomplete) == (250, 3)
        view = job_view({**stopped, **VIEW_FIELDS}, ledger())
        assert (view.records_done, view.records_incomplete) == (250, 3)
        assert view.export is not None
        assert (view.export.records, view.export.incomplete) == (253, 3)
        pending = job(status="CANCELLED", export={"status": "PENDING"})
        assert build_dashboard(pending, ledger(), None, NOW).progress.incomplete is None
        assert job_view({**pending, **VIEW_FIELDS}, ledger()).records_incomplete is None


class TestQuotaPanels:
    def test_the_dashboard_shows_time_waited_paused_partitions_and_the_quotas_in_use(
        self,
    ) -> None:
        money = ledger()
        money.quota_wait_ms = 12_345
        money.throttled_calls = 3
        paused = {"4": {"reason": "model m throttled every call for 300 s", "until": NOW}}
        docs = [
            {"model": MICRO, "quota": 300000.0, "share": 147000.0, "rate": 100000.0,
             "used": 90000.4, "waiting": 3},
            {"model": MICRO, "quota": 300000.0, "share": 147000.0, "rate": 147000.0,
             "used": 140000.0, "waiting": 0},
            {"model": HAIKU, "quota": None, "share": None, "rate": None, "used": 5.0,
             "waiting": 0},
        ]  # fmt: skip
        board = build_dashboard(job(paused=paused), money, None, NOW, quota_uses(docs))
        assert board.tokens.quota_wait_seconds == 12.345
        assert board.tokens.throttled == 3
        assert board.progress.partitions_paused == 1
        assert board.progress.paused_reason == "model m throttled every call for 300 s"
        lines = {line.model: line for line in board.quotas}
        assert lines[MICRO].generators == 2
        assert (lines[MICRO].quota_tpm, lines[MICRO].share_tpm) == (300000, 294000)
        assert (lines[MICRO].rate_tpm, lines[MICRO].used_tpm) == (247000, 230000)
        assert lines[MICRO].waiting == 3
        assert (lines[HAIKU].quota_tpm, lines[HAIKU].rate_tpm) == (None, None)

    def test_a_job_that_ended_shows_no_paused_partition(self) -> None:
        paused = {"4": {"reason": "away", "until": NOW}}
        board = build_dashboard(job(status="CANCELLED", paused=paused), ledger(), None, NOW)
        assert board.progress.partitions_paused == 0
        assert board.quotas == []
