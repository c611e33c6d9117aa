"""The live view of a job's ledger: closed totals plus its open leases' settled usage."""

from __future__ import annotations

import pytest

from palette.common.ledger_view import build_view

pytestmark = pytest.mark.unit

USAGE = {"calls": 2, "input_tokens": 30, "output_tokens": 40, "cost": 500, "model_id": "m"}


def ledger(**overrides: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "_id": "job-1",
        "budget": 10_000,
        "available": 6_000,
        "spent": 1_000,
        "pending": {"lease-a": 2_000, "lease-b": 1_000},
        "calls": 4,
        "input_tokens": 100,
        "output_tokens": 200,
        "by_model": {"m": {"calls": 4, "cost": 1_000, "model_id": "m"}},
        "by_step": {"s": {"calls": 4, "cost": 1_000}},
    }
    doc.update(overrides)
    return doc


class TestBuildView:
    def test_no_ledger_yet_is_the_whole_budget_available(self) -> None:
        view = build_view(None, 7_000, [])
        assert (view.budget, view.available, view.spent, view.reserved) == (7_000, 7_000, 0, 0)

    def test_open_leases_add_their_settled_usage_and_reserve_the_rest(self) -> None:
        lease = {"_id": "lease-a", "job_id": "job-1", "settled": 500, "usage": {"s": USAGE}}
        view = build_view(ledger(), 10_000, [lease])
        assert view.spent == 1_500
        assert view.reserved == 3_000 - 500
        assert view.open_leases == 1
        assert (view.calls, view.input_tokens, view.output_tokens) == (6, 130, 240)
        assert view.by_step["s"].cost == 1_500
        assert view.by_model["m"].calls == 6
        assert view.budget == view.available + view.reserved + view.spent

    def test_a_lease_no_longer_pending_counts_once_in_the_totals(self) -> None:
        closed = {"_id": "lease-c", "job_id": "job-1", "settled": 999, "usage": {"s": USAGE}}
        view = build_view(ledger(), 10_000, [closed])
        assert view.spent == 1_000
        assert view.open_leases == 0
        assert view.calls == 4


class TestRetryCounts:
    def test_closed_totals_and_open_leases_counters_add_up(self) -> None:
        doc = ledger(throttled_calls=5, retried_calls=7)
        open_lease = {
            "_id": "lease-a",
            "settled": 0,
            "usage": {},
            "retries": {"throttled": 2, "retried": 1},
        }
        closed = {"_id": "lease-c", "settled": 0, "retries": {"throttled": 100, "retried": 100}}
        view = build_view(doc, 10_000, [open_lease, closed])
        assert (view.throttled_calls, view.retried_calls) == (7, 8)

    def test_a_ledger_without_counters_has_none(self) -> None:
        view = build_view(ledger(), 10_000, [])
        assert (view.throttled_calls, view.retried_calls) == (0, 0)
