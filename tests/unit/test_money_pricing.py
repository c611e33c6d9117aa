from decimal import Decimal

import pytest

from palette.common.money import MoneyError, picos_to_usd, usd_to_picos
from palette.common.pricing import PricingTable, UnknownModelError

pytestmark = pytest.mark.unit

REQUIRED = {
    "anthropic.claude-haiku-4-5-20251001-v1:0",
    "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "meta.llama3-1-8b-instruct-v1:0",
    "meta.llama3-1-70b-instruct-v1:0",
    "mistral.mistral-7b-instruct-v0:2",
    "amazon.nova-micro-v1:0",
    "amazon.nova-lite-v1:0",
    "amazon.nova-pro-v1:0",
}


class TestMoney:
    def test_usd_round_trips_through_picodollars(self) -> None:
        for usd in ["0.000000000001", "40", "12.345678901234", "0.035"]:
            assert picos_to_usd(usd_to_picos(usd)) == Decimal(usd)

    def test_refuses_amounts_finer_than_a_picodollar(self) -> None:
        with pytest.raises(MoneyError):
            usd_to_picos("0.0000000000001")


class TestPricingTable:
    def test_ships_every_required_model_with_source_and_date(self) -> None:
        table = PricingTable.load()
        assert set(table.models) >= REQUIRED
        for model in REQUIRED:
            entry = table.entry(model)
            assert entry.source
            assert entry.as_of

    def test_cost_is_exact_integer_picodollars(self) -> None:
        table = PricingTable.load()
        # Nova Micro: $0.035 / 1M input, $0.14 / 1M output.
        cost = table.cost("amazon.nova-micro-v1:0", 1_000_000, 1_000_000)
        assert cost == usd_to_picos("0.175")
        # 3 input tokens cost 3 * 0.035e-6 USD exactly.
        assert table.cost("amazon.nova-micro-v1:0", 3, 0) == 105_000

    def test_sum_of_many_small_costs_has_no_drift(self) -> None:
        table = PricingTable.load()
        one = table.cost("amazon.nova-micro-v1:0", 7, 11)
        assert sum(one for _ in range(100_000)) == table.cost(
            "amazon.nova-micro-v1:0", 700_000, 1_100_000
        )

    def test_unknown_model_is_refused(self) -> None:
        with pytest.raises(UnknownModelError, match="no price"):
            PricingTable.load().price("acme.unknown-model")

    def test_override_file_replaces_the_table(self, tmp_path) -> None:
        path = tmp_path / "prices.json"
        path.write_text(
            '{"models": {"x.model": {"input_per_million": "2", "output_per_million": "4",'
            ' "source": "test", "as_of": "2026-01-01"}}}'
        )
        table = PricingTable.load(path)
        assert table.models == ["x.model"]
        assert table.cost("x.model", 1, 1) == 6_000_000

    def test_price_with_more_than_six_decimals_is_rejected(self, tmp_path) -> None:
        path = tmp_path / "prices.json"
        path.write_text(
            '{"models": {"x": {"input_per_million": "0.0000001", "output_per_million": "1",'
            ' "source": "t", "as_of": "d"}}}'
        )
        with pytest.raises(ValueError, match="six decimals"):
            PricingTable.load(path)


PROFILE_TABLE = """{"models": {"x.model": {"input_per_million": "2", "output_per_million": "4",
 "source": "test", "as_of": "2026-01-01"}}, "profiles": {%s}}"""


class TestInferenceProfilePricing:
    def test_a_listed_profile_costs_what_its_base_model_costs(self) -> None:
        table = PricingTable.load()
        for profile_id, profile in table.profiles.items():
            assert profile.source
            assert profile.as_of
            assert table.price(profile_id) == table.price(profile.priced_as)
        assert table.cost("us.amazon.nova-micro-v1:0", 3, 0) == 105_000
        assert "us.amazon.nova-micro-v1:0" in table.models

    def test_a_profile_not_in_the_table_is_refused(self) -> None:
        with pytest.raises(UnknownModelError):
            PricingTable.load().price("eu.acme.unknown-model")

    def test_profile_must_be_its_base_model_behind_a_known_prefix(self, tmp_path) -> None:
        path = tmp_path / "prices.json"
        wrong = [
            '"xx.x.model": {"priced_as": "x.model", "source": "t", "as_of": "d"}',
            '"us.y.model": {"priced_as": "x.model", "source": "t", "as_of": "d"}',
            '"us.z.model": {"priced_as": "z.model", "source": "t", "as_of": "d"}',
        ]
        for profile in wrong:
            path.write_text(PROFILE_TABLE % profile)
            with pytest.raises(ValueError, match="profile"):
                PricingTable.load(path)

    def test_override_file_may_list_profiles(self, tmp_path) -> None:
        path = tmp_path / "prices.json"
        path.write_text(
            PROFILE_TABLE
            % '"global.x.model": {"priced_as": "x.model", "source": "t", "as_of": "d"}'
        )
        table = PricingTable.load(path)
        assert table.models == ["global.x.model", "x.model"]
        assert table.cost("global.x.model", 1, 1) == 6_000_000
