"""Prices per service tier and in batch: exact, as data, refused where Bedrock has none."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from pydantic import ValidationError

from palette.common.pricing import (
    DEFAULT_PRICING_FILE,
    PricingTable,
    UnknownModelError,
    load_pricing,
)
from palette.common.service_tiers import (
    JobMode,
    ServiceTier,
    TierPrice,
    UnpricedRateError,
    rate_costs,
    rate_names,
    rated_table,
    require_rate,
)

PRICING = load_pricing()
PRO = "amazon.nova-pro-v1:0"
MICRO = "amazon.nova-micro-v1:0"


class TestShippedTable:
    def test_every_model_has_a_batch_price_with_source_and_date(self) -> None:
        raw = json.loads(DEFAULT_PRICING_FILE.read_text(encoding="utf-8"))["models"]
        for model, entry in raw.items():
            batch = entry["batch"]
            assert batch["source"], model
            assert batch["as_of"], model
            # Bedrock's batch is half the on-demand price for every model we list.
            assert Decimal(batch["input_per_million"]) * 2 == Decimal(entry["input_per_million"])
            assert Decimal(batch["output_per_million"]) * 2 == Decimal(entry["output_per_million"])

    def test_nova_pro_is_priced_at_every_tier(self) -> None:
        assert rate_costs(PRICING, PRO, 1_000_000, 1_000_000) == {
            "default": 4_000_000_000_000,
            "flex": 2_000_000_000_000,
            "priority": 7_000_000_000_000,
            "batch": 2_000_000_000_000,
        }

    def test_a_profile_is_priced_at_its_base_models_tier(self) -> None:
        flex = rated_table(PRICING, "flex")
        assert flex.price("us.amazon.nova-pro-v1:0") == flex.price(PRO)

    def test_a_model_bedrock_serves_at_no_flex_tier_has_no_flex_price(self) -> None:
        assert rate_costs(PRICING, MICRO, 10, 10)["flex"] is None
        with pytest.raises(UnknownModelError):
            rated_table(PRICING, "flex").price(MICRO)
        with pytest.raises(UnpricedRateError, match="'flex' service tier"):
            require_rate(PRICING, "flex", [PRO, MICRO])

    def test_default_is_the_table_itself(self) -> None:
        assert rated_table(PRICING, "default") is PRICING
        require_rate(PRICING, "default", [MICRO])

    def test_rated_tables_are_built_once(self) -> None:
        assert rated_table(PRICING, "batch") is rated_table(PRICING, "batch")

    def test_unknown_rate_is_refused(self) -> None:
        with pytest.raises(ValueError, match="unknown rate 'reserved'"):
            rated_table(PRICING, "reserved")


class TestExactness:
    def test_tier_price_finer_than_a_picodollar_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="six decimals"):
            TierPrice(
                input_per_million=Decimal("0.0000001"),
                output_per_million=Decimal(1),
                source="x",
                as_of="2026-01-01",
            )

    def test_costs_are_integer_picodollars(self) -> None:
        table = PricingTable.load(DEFAULT_PRICING_FILE)
        cost = rated_table(table, "priority").cost(PRO, 3, 7)
        assert cost == 3 * 1_400_000 + 7 * 5_600_000


class TestNames:
    def test_rates_and_modes(self) -> None:
        assert rate_names() == ("default", "flex", "priority", "batch")
        assert [t.value for t in ServiceTier] == ["default", "flex", "priority"]
        assert [m.value for m in JobMode] == ["online", "batch"]


class TestPreviewEstimateByRate:
    def test_each_rate_side_by_side_and_null_where_a_model_has_no_price(self) -> None:
        from palette.gateway.estimating import by_rate, rate_costs

        pro = rate_costs([(PRO, 100, 50)], PRICING)
        micro = rate_costs([(MICRO, 100, 50)], PRICING)
        assert pro == {
            "default": 100 * 800_000 + 50 * 3_200_000,
            "flex": 100 * 400_000 + 50 * 1_600_000,
            "priority": 100 * 1_400_000 + 50 * 5_600_000,
            "batch": 100 * 400_000 + 50 * 1_600_000,
        }
        views = by_rate(1000, [pro], [pro, pro])
        assert views["flex"] is not None
        assert views["flex"].worst_case_usd == "0.12"
        assert views["flex"].mean_usd == "0.12"
        assert views["priority"] is not None
        assert views["priority"].worst_case_usd == "0.42"
        mixed = by_rate(10, [pro, micro])
        assert mixed["flex"] is None
        assert mixed["batch"] is not None
        assert mixed["batch"].mean_usd is None
