"""Reconciliation's pure parts: the invocation log's records, keys and the settlement arithmetic."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from palette.accounting import ledger
from palette.accounting.invocations import (
    InvocationLogError,
    LoggedCall,
    hours,
    parse_log_object,
    unique,
)
from palette.accounting.reconciler import settlement
from palette.common.keys import invocation_log_folder, invocation_logs_root
from palette.common.pricing import load_pricing
from palette.devstack.invocation_log import encode_batch, invocation_record, object_key

pytestmark = pytest.mark.unit

PRICING = load_pricing(None)
MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"
AT = datetime(2026, 3, 1, 23, 59, 30, 250_000, tzinfo=UTC)


def record(request_id: str = "r1", **metadata: str) -> dict[str, Any]:
    return invocation_record(
        request_id=request_id,
        model_id=MODEL,
        input_tokens=11,
        output_tokens=7,
        request_metadata={"lease_id": "L1", "step": "a", "call_id": "c1", **metadata},
        at=AT,
        account="123456789012",
        region="us-east-1",
    )


def call(request_id: str, call_id: str, step: str = "a", lease: str = "L1") -> LoggedCall:
    return LoggedCall(request_id, MODEL, 100, 50, lease, step, call_id)


def cost(c: LoggedCall) -> int:
    return PRICING.cost(c.model_id, c.input_tokens, c.output_tokens)


class TestInvocationLogRecords:
    def test_what_the_emulator_writes_is_what_accounting_reads(self) -> None:
        body = encode_batch([record("r1"), record("r2", call_id="c2", step="b")])
        calls = parse_log_object(body, "obj")
        assert calls == [
            LoggedCall("r1", MODEL, 11, 7, "L1", "a", "c1"),
            LoggedCall("r2", MODEL, 11, 7, "L1", "b", "c2"),
        ]
        line = json.loads(gzip.decompress(body).splitlines()[0])
        assert line["schemaType"] == "ModelInvocationLog"
        assert line["operation"] == "Converse"
        assert line["timestamp"] == "2026-03-01T23:59:30.250000Z"

    def test_records_of_others_are_skipped(self) -> None:
        other_schema = {**record(), "schemaType": "SomethingElse"}
        no_lease = {**record(), "requestMetadata": {"preview_id": "p"}}
        no_metadata = {k: v for k, v in record().items() if k != "requestMetadata"}
        body = encode_batch([other_schema, no_lease, no_metadata, record("mine")])
        assert [c.request_id for c in parse_log_object(body, "obj")] == ["mine"]

    def test_plain_json_lines_are_read_too(self) -> None:
        body = (json.dumps(record()) + "\n\n").encode()
        assert len(parse_log_object(body, "obj")) == 1

    def test_a_foundation_model_arn_names_its_model(self) -> None:
        arn = f"arn:aws:bedrock:us-east-1::foundation-model/{MODEL}"
        body = encode_batch([{**record(), "modelId": arn}])
        assert parse_log_object(body, "obj")[0].model_id == MODEL

    @pytest.mark.parametrize(
        ("change", "problem"),
        [
            ({"input": {}}, "input.inputTokenCount"),
            ({"output": {"outputTokenCount": -1}}, "output.outputTokenCount"),
            ({"output": {"outputTokenCount": "7"}}, "output.outputTokenCount"),
            ({"requestId": ""}, "requestId"),
            ({"modelId": None}, "modelId"),
        ],
    )
    def test_a_malformed_record_of_a_lease_is_an_error_naming_the_field(
        self, change: dict[str, Any], problem: str
    ) -> None:
        body = encode_batch([record(), {**record(), **change}])
        with pytest.raises(InvocationLogError, match=rf"s3://b/k line 2: {problem}"):
            parse_log_object(body, "s3://b/k")

    @pytest.mark.parametrize(
        "body", [b"\x1f\x8bnot gzip", b"{not json}\n", b"[1, 2]\n", b"\xff\xfe\n"]
    )
    def test_an_object_that_is_not_a_log_is_an_error(self, body: bytes) -> None:
        with pytest.raises(InvocationLogError, match="obj"):
            parse_log_object(body, "obj")

    def test_a_request_logged_twice_counts_once(self) -> None:
        calls = [call("r1", "c1"), call("r2", "c2"), call("r1", "c1")]
        assert [c.request_id for c in unique(calls)] == ["r1", "r2"]


class TestInvocationLogKeys:
    def test_objects_go_in_hour_folders_under_the_prefix(self) -> None:
        key = object_key("logs/bedrock/", "123456789012", "us-east-1", AT)
        folder = "logs/bedrock/AWSLogs/123456789012/BedrockModelInvocationLogs/us-east-1/"
        assert folder == invocation_log_folder("logs/bedrock", "123456789012", "us-east-1")
        assert key.startswith(folder + "2026/03/01/23/20260301T235930250Z_")
        assert key.endswith(".json.gz")

    def test_an_empty_prefix_starts_at_awslogs(self) -> None:
        assert invocation_logs_root("") == "AWSLogs/"
        assert invocation_logs_root("/x/") == "x/AWSLogs/"

    def test_hours_cover_both_ends_across_midnight(self) -> None:
        end = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
        assert list(hours(AT, end)) == ["2026/03/01/23/", "2026/03/02/00/", "2026/03/02/01/"]


class TestHeldLease:
    def test_holds_known_cost_plus_the_worst_case_of_unknown_calls(self) -> None:
        assert ledger.held_amount(1000, 300, 200) == 500

    def test_never_holds_more_than_the_lease(self) -> None:
        assert ledger.held_amount(1000, 900, 200) == 1000

    def test_without_a_log_unknown_calls_cost_their_worst_case(self) -> None:
        assert ledger.unlogged_charge(1000, 300, 200, whole=False) == 200
        assert ledger.unlogged_charge(1000, 900, 200, whole=False) == 100

    def test_without_a_log_a_lost_holders_lease_costs_all_of_it(self) -> None:
        assert ledger.unlogged_charge(1000, 300, 0, whole=True) == 700


class TestSettlement:
    def test_unknown_calls_cost_what_the_log_says_and_absent_ones_nothing(self) -> None:
        known = ledger.usage_map([], PRICING)
        known["a"] = {"model_id": MODEL, "calls": 2, "input_tokens": 9, "output_tokens": 9}
        known["a"]["cost"] = PRICING.cost(MODEL, 9, 9)
        logged = [call("r1", "u1"), call("r2", "u2", step="b"), call("r3", "answered")]
        result = ledger.settle_unknown(known, 1234, ["u1", "u2", "never-billed"], logged, PRICING)
        assert result.settled == 1234 + cost(logged[0]) + cost(logged[1])
        assert result.logged_calls == 2
        assert result.usage["a"]["calls"] == 3
        assert result.usage["a"]["input_tokens"] == 109
        assert result.usage["b"] == {
            "model_id": MODEL,
            "calls": 1,
            "input_tokens": 100,
            "output_tokens": 50,
            "cost": cost(logged[1]),
        }

    def test_a_lost_holders_lease_costs_every_logged_call_once(self) -> None:
        logged = [call("r1", "x"), call("r2", "y", step="b"), call("r1", "x")]
        result = ledger.settle_lost(logged, PRICING)
        assert result.settled == cost(logged[0]) + cost(logged[1])
        assert result.logged_calls == 2
        assert set(result.usage) == {"a", "b"}

    def test_a_reconciled_lease_returns_the_rest_and_stays_within_it(self) -> None:
        amount, known = 10**9, 4 * 10**8
        worst = 4 * 10**8  # the one call below costs 3.5e8
        held = ledger.held_amount(amount, known, worst)
        logged = [call("r1", "u1")]
        result = ledger.settle_unknown({}, known, ["u1"], logged, PRICING)
        closing = ledger.close_lease(held, known, result.settled)
        assert result.settled <= held <= amount
        assert closing.returned == held - result.settled
        assert (amount - held) + closing.returned + result.settled == amount


class TestReconcilerSettlement:
    def lease(self, kind: str, **hold: Any) -> dict[str, Any]:
        return {
            "_id": "L1",
            "amount": 10**9,
            "settled": 10**8,
            "usage": {},
            "reconcile": {"kind": kind, **hold},
        }

    def test_unknown_calls_settle_from_the_log(self) -> None:
        logged = [call("r1", "u1")]
        result, charge = settlement(self.lease("unknown", calls=["u1"]), logged, PRICING)
        assert (result.settled, charge) == (10**8 + cost(logged[0]), 0)

    def test_a_lost_holder_settles_from_the_log_alone(self) -> None:
        logged = [call("r1", "x"), call("r2", "y")]
        result, charge = settlement(self.lease("lost"), logged, PRICING)
        assert (result.settled, charge) == (cost(logged[0]) + cost(logged[1]), 0)

    def test_with_no_log_left_holds_settle_at_their_worst_case(self) -> None:
        unknown, charge = settlement(self.lease("unknown", calls=["u"], worst=5), None, PRICING)
        assert (unknown.settled, charge) == (10**8 + 5, 5)
        lost, charge = settlement(self.lease("lost"), None, PRICING)
        assert (lost.settled, charge) == (10**9, 9 * 10**8)
