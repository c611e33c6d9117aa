"""Preview spend's pure parts in accounting and the generator: the charge, a day's standing."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from palette.accounting import previews
from palette.common.messages import PreviewRecord, StepUsage
from palette.common.pricing import PricingTable, UnknownModelError
from palette.common.templates import TemplateSpec
from palette.generator.preview import Spend, _answer

pytestmark = pytest.mark.unit

PRICING = PricingTable.load()
MICRO = "amazon.nova-micro-v1:0"
HAIKU = "anthropic.claude-haiku-4-5-20251001-v1:0"
DAY = date(2026, 3, 1)


def step(step_id: str, model: str, i: int, o: int) -> StepUsage:
    return StepUsage(step_id=step_id, model_id=model, calls=1, input_tokens=i, output_tokens=o)


class TestPreviewCharge:
    def test_each_model_is_priced_exactly_and_the_unknown_part_added(self) -> None:
        charge = previews.charge(
            [step("a", MICRO, 10, 20), step("b", HAIKU, 30, 40), step("c", MICRO, 1, 2)],
            unknown_worst=7,
            pricing=PRICING,
        )
        micro = PRICING.cost(MICRO, 11, 22)
        haiku = PRICING.cost(HAIKU, 30, 40)
        assert charge.usage == [
            {"model_id": MICRO, "calls": 2, "input_tokens": 11, "output_tokens": 22, "cost": micro},
            {"model_id": HAIKU, "calls": 1, "input_tokens": 30, "output_tokens": 40, "cost": haiku},
        ]
        assert (charge.cost, charge.unreconciled) == (micro + haiku + 7, 7)

    def test_a_model_without_a_price_is_refused(self) -> None:
        with pytest.raises(UnknownModelError):
            previews.charge([step("a", "acme.gpt-9", 1, 1)], 0, PRICING)


class TestPreviewStanding:
    def test_a_reservation_fits_up_to_the_limit_and_not_a_picodollar_more(self) -> None:
        standing = previews.standing({"committed": 70, "spent": 50}, limit=100)
        assert (standing.spent, standing.reserved, standing.available) == (50, 20, 30)
        assert standing.fits(30)
        assert not standing.fits(31)

    def test_nothing_used_yet_and_an_overspent_day(self) -> None:
        assert previews.standing(None, 100).available == 100
        assert previews.standing({"committed": 130, "spent": 130}, 100).available == 0

    def test_the_day_is_the_utc_day(self) -> None:
        late = datetime(2026, 3, 1, 23, 30, tzinfo=timezone(timedelta(hours=-5)))
        assert previews.day_of(late) == date(2026, 3, 2)
        assert previews.day_of(datetime(2026, 3, 1, 23, 59)) == DAY
        assert previews.budget_key("ann", DAY) == "ann/2026-03-01"
        deadline = datetime(2026, 3, 1, tzinfo=UTC)
        assert previews.expiry(deadline, 600) == deadline + timedelta(minutes=10)


class TestRedeliveredPreview:
    def test_is_not_run_again_and_is_settled_at_its_whole_cap(self) -> None:
        msg = PreviewRecord(
            owner="ann",
            template=TemplateSpec.model_validate(
                {"steps": [{"id": "a", "model": MICRO, "prompt": "hi"}]}
            ),
            seed={},
            max_cost=1234,
            deadline=datetime.now(UTC) + timedelta(minutes=1),
        )
        spend = Spend()
        result = asyncio.run(_answer(msg, None, spend, redelivered=True))  # type: ignore[arg-type]
        assert result.error == "the preview was interrupted; run it again"
        completed = spend.completed(msg)
        assert (completed.usage, completed.unknown_worst) == ((), 1234)
        assert completed.preview_id == msg.message_id
        assert completed.message_id == spend.completed(msg).message_id != msg.message_id
