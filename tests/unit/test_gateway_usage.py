"""The gateway's preview budget refusal and ``GET /usage``'s pure parts: days, rows, totals."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from palette.common.messages import PreviewBudgetResult
from palette.gateway.controllers.usage import day_range, parse_day
from palette.gateway.preview_budget import refusal, seconds_to_next_day
from palette.gateway.problems import Problem
from palette.gateway.schemas import UsageGroupBy, UsageKind
from palette.gateway.usage import UsageRecords, usage_view

pytestmark = pytest.mark.unit

MICRO = "amazon.nova-micro-v1:0"
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
DAY = date(2026, 3, 1)


def answer(**changes: Any) -> PreviewBudgetResult:
    fields: dict[str, Any] = {
        "preview_id": "p1",
        "granted": False,
        "day": DAY,
        "limit": 1_000_000,
        "spent": 900_000,
        "reserved": 0,
        "available": 100_000,
    }
    return PreviewBudgetResult(**(fields | changes))


class TestPreviewRefusal:
    NOON = datetime(2026, 3, 1, 12, 0, 0, 500_000, tzinfo=UTC)

    def test_an_exhausted_day_is_a_429_that_says_what_is_left_and_when_it_renews(self) -> None:
        problem = refusal(answer(), 200_000, self.NOON)
        assert problem.status_code == 429
        assert problem.headers == {"Retry-After": str(12 * 3600)}
        assert problem.extensions == {
            "day": "2026-03-01",
            "budget_usd": "0.000001",
            "spent_usd": "0.0000009",
            "reserved_usd": "0",
            "available_usd": "0.0000001",
            "needed_usd": "0.0000002",
        }
        assert "0.0000001 of 0.000001 USD" in problem.detail
        assert "renews at 00:00 UTC" in problem.detail
        assert problem.errors[0]["field"] == "run"

    def test_a_day_held_by_running_previews_is_worth_trying_again_soon(self) -> None:
        problem = refusal(answer(spent=0, reserved=900_000), 200_000, self.NOON)
        assert problem.headers == {"Retry-After": "5"}
        assert "previews still running" in problem.detail

    def test_seconds_to_the_next_day(self) -> None:
        assert seconds_to_next_day(datetime(2026, 3, 1, 23, 59, 59, tzinfo=UTC)) == 1
        assert seconds_to_next_day(datetime(2026, 3, 1, 0, 0, tzinfo=UTC)) == 86400


class TestUsageDays:
    def test_defaults_are_the_last_thirty_days(self) -> None:
        assert day_range(None, None, DAY) == (DAY - timedelta(days=29), DAY)
        assert day_range(None, DAY, date(2030, 1, 1)) == (DAY - timedelta(days=29), DAY)

    @pytest.mark.parametrize(
        ("first", "last", "problem"),
        [
            (date(2026, 3, 2), DAY, "2026-03-02 is after `to` (2026-03-01)"),
            (date(2025, 2, 28), DAY, "the range may span at most 366 days"),
        ],
    )
    def test_a_reversed_or_too_long_range_is_refused_naming_from(
        self, first: date, last: date, problem: str
    ) -> None:
        with pytest.raises(Problem) as raised:
            day_range(first, last, DAY)
        assert raised.value.status_code == 422
        assert raised.value.errors == [{"field": "from", "problem": problem}]

    @pytest.mark.parametrize("value", ["yesterday", "2026-02-30", "20260301", "2026-3-1"])
    def test_a_day_is_yyyy_mm_dd_and_real(self, value: str) -> None:
        with pytest.raises(Problem) as raised:
            parse_day(value, "to")
        assert raised.value.errors[0]["field"] == "to"
        assert parse_day("2026-03-01", "to") == DAY
        assert parse_day(None, "to") is None

    def test_a_year_is_accepted(self) -> None:
        assert day_range(date(2025, 3, 1), DAY, DAY)[0] == date(2025, 3, 1)


def lease(job: str, at: datetime, settled: int, *entries: tuple[str, int, int]) -> dict[str, Any]:
    usage = {
        f"s{k}": {"model_id": m, "calls": n, "input_tokens": n, "output_tokens": n, "cost": c}
        for k, (m, n, c) in enumerate(entries)
    }
    return {"job_id": job, "created_at": at, "settled": settled, "usage": usage}


def preview(pid: str, day: date, state: str, **fields: Any) -> dict[str, Any]:
    return {"_id": pid, "day": day.isoformat(), "state": state, **fields}


RECORDS = UsageRecords(
    job_templates={"j1": "t1", "j2": None},
    leases=[
        lease("j1", datetime(2026, 3, 1, 23, 0), 100, (MICRO, 2, 60), (HAIKU, 1, 40)),
        lease("j1", datetime(2026, 3, 2, 1, 0, tzinfo=UTC), 35, (MICRO, 1, 30)),  # 5 unknown
        lease("j2", datetime(2026, 3, 2, 2, 0, tzinfo=UTC), 10, (HAIKU, 1, 10)),
    ],
    previews=[
        preview(
            "p1",
            DAY,
            "settled",
            template_id="t1",
            usage=[
                {"model_id": MICRO, "calls": 3, "input_tokens": 3, "output_tokens": 3, "cost": 7}
            ],
            unreconciled=0,
        ),
        preview("p2", date(2026, 3, 2), "settled", template_id="t2", usage=[], unreconciled=4),
        preview("p3", date(2026, 3, 2), "reserved", template_id="t1", amount=50),
        preview("p4", DAY, "expired", template_id="t1", amount=80),
    ],
)


def table(group_by: UsageGroupBy) -> list[tuple[Any, ...]]:
    view = usage_view(DAY, date(2026, 3, 2), group_by, RECORDS)
    return [(r.key, r.kind.value, r.cost_usd, r.calls, r.items) for r in view.rows]


class TestUsageRows:
    def test_totals_count_settled_spend_and_report_reservations_apart(self) -> None:
        view = usage_view(DAY, date(2026, 3, 2), UsageGroupBy.DAY, RECORDS)
        assert (view.job_usd, view.preview_usd, view.total_usd) == (
            "0.000000000145",
            "0.000000000011",
            "0.000000000156",
        )
        assert view.preview_reserved_usd == "0.00000000005"

    def test_by_day_each_kind_on_the_day_of_its_lease_or_reservation(self) -> None:
        assert table(UsageGroupBy.DAY) == [
            ("2026-03-01", "job", "0.0000000001", 3, 1),
            ("2026-03-01", "preview", "0.000000000007", 3, 1),
            ("2026-03-02", "job", "0.000000000045", 2, 2),
            ("2026-03-02", "preview", "0.000000000004", 0, 1),
        ]

    def test_by_model_with_spend_of_no_usage_detail_last(self) -> None:
        assert table(UsageGroupBy.MODEL) == [
            (MICRO, "job", "0.00000000009", 3, 1),
            (MICRO, "preview", "0.000000000007", 3, 1),
            (HAIKU, "job", "0.00000000005", 2, 2),
            (None, "job", "0.000000000005", 0, 1),
            (None, "preview", "0.000000000004", 0, 1),
        ]

    def test_by_kind_and_by_template(self) -> None:
        assert table(UsageGroupBy.KIND) == [
            ("job", "job", "0.000000000145", 5, 2),
            ("preview", "preview", "0.000000000011", 3, 2),
        ]
        assert table(UsageGroupBy.TEMPLATE) == [
            ("t1", "job", "0.000000000135", 4, 1),
            ("t1", "preview", "0.000000000007", 3, 1),
            ("t2", "preview", "0.000000000004", 0, 1),
            (None, "job", "0.00000000001", 1, 1),
        ]
        assert {kind.value for kind in UsageKind} == {"job", "preview"}
