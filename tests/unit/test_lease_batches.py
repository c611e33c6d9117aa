"""Batch jobs a held lease pays for: which are counted, how they are held and priced."""

from __future__ import annotations

import pytest

from palette.accounting import ledger
from palette.accounting.lease_batches import batch_query
from palette.common.batch_jobs import batch_call_id, usage_of
from palette.common.messages import StepUsage
from palette.common.pricing import load_pricing
from palette.common.service_tiers import rated_table
from palette.generator.budget import LeaseGuard

MICRO = "amazon.nova-micro-v1:0"


class TestBatchQuery:
    def test_a_lost_holders_lease_counts_every_batch_job_recorded_under_it(self) -> None:
        lease = {"_id": "L", "reconcile": {"kind": "lost", "holder": "g"}}
        assert batch_query(lease) == {"lease_id": "L"}

    def test_an_attempt_with_unapplied_jobs_counts_those_it_named(self) -> None:
        calls = ["call-1", batch_call_id("t1"), batch_call_id("t2")]
        lease = {"_id": "L", "reconcile": {"kind": "unknown", "calls": calls}}
        assert batch_query(lease) == {"_id": {"$in": ["t1", "t2"]}}

    def test_unknown_online_calls_alone_count_no_batch_job(self) -> None:
        lease = {"_id": "L", "reconcile": {"kind": "unknown", "calls": ["call-1"]}}
        assert batch_query(lease) is None


class TestUsageOf:
    def test_counts_answered_entries_of_the_jobs_records_only(self) -> None:
        lines = [
            {
                "recordId": "00000000001",
                "modelOutput": {"usage": {"inputTokens": 5, "outputTokens": 7}},
            },
            {"recordId": "00000000002", "error": {"errorCode": 500, "errorMessage": "x"}},
            {
                "recordId": "00000000009",
                "modelOutput": {"usage": {"inputTokens": 1, "outputTokens": 1}},
            },
        ]
        assert usage_of(lines, {1, 2}) == (1, 5, 7)


class TestWithBatches:
    def test_adds_the_batch_cost_at_the_batch_price_to_the_logged_settlement(self) -> None:
        pricing = load_pricing()
        online = ledger.usage_map(
            [StepUsage(step_id="s", model_id=MICRO, calls=1, input_tokens=10)], pricing
        )
        logged = ledger.Settlement(online, int(online["s"]["cost"]), 1)
        rows = [
            StepUsage(
                step_id="s",
                model_id=MICRO,
                calls=3,
                input_tokens=300,
                output_tokens=60,
                service_tier="batch",
            )
        ]
        batches = ledger.usage_map(rows, pricing)
        result = ledger.with_batches(logged, batches)
        batch_cost = rated_table(pricing, "batch").cost(MICRO, 300, 60)
        assert result.settled == logged.settled + batch_cost
        assert result.usage["s"]["calls"] == 4
        assert result.logged_calls == 1


class TestHoldAll:
    def test_holds_a_jobs_reservations_as_one_unknown_call(self) -> None:
        guard = LeaseGuard(1000)
        reservations = [guard.reserve(100), guard.reserve(200)]
        other = guard.reserve(50)
        assert guard.hold_all(reservations, batch_call_id("t")) == 300
        assert guard.unknown == {"batch:t": 300}
        assert guard.held == 300
        assert guard.available == 1000 - 300 - 50
        guard.release(other)
        with pytest.raises(ValueError, match="not open"):
            guard.hold_all(reservations, batch_call_id("u"))
