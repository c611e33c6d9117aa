"""The preview budget on the real services: refused at the cap, never exceeded under concurrency.

The budget gateway's preview budget (``PREVIEW_BUDGET_USD`` a day) holds the worst
case of one ``BUDGET_STEP`` preview and not of two. What accounting settles is
compared with the emulator's billing log, to the picodollar.
"""

from __future__ import annotations

import itertools
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import httpx
import pytest

from palette.devstack.client import GatewayClient
from palette.devstack.stack import DevStack
from tests.integration.gateway_fixtures import BUDGET_STEP, PREVIEW_BUDGET_USD, MakeApi
from tests.integration.jobs import cost, picos, problem, settled_usage, usage
from tests.integration.waiting import wait_until, wait_usage_settled

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

SEED = {"product": "a kettle"}
BUDGET = Decimal(PREVIEW_BUDGET_USD)


def run(api: GatewayClient, template_id: str) -> httpx.Response:
    return api.http.post(
        f"/templates/{template_id}/preview", params={"run": "true"}, json={"seed": SEED}
    )


class TestPreviewBudgetCap:
    def test_previews_run_until_the_next_does_not_fit_then_a_429_says_what_is_left(
        self, make_budget_api: MakeApi, devstack: DevStack
    ) -> None:
        user, api = make_budget_api()
        template = api.create_template(BUDGET_STEP)
        ran: list[dict[str, Any]] = []
        while (response := run(api, template["id"])).status_code == 200:
            ran.append(response.json())
            assert len(ran) <= 2, "a third preview fitted in a budget of less than two"
            wait_usage_settled(api, len(ran))
        refused = problem(response, 429)

        billed = devstack.emulator_control().billing(owner=user)
        spent = settled_usage(api, len(ran))
        assert spent is not None
        assert len(billed) == len(ran) >= 1  # the refused preview called nothing
        assert picos(spent["preview_usd"]) == cost(billed)
        assert sum(picos(view["cost_usd"]) for view in ran) == cost(billed)
        worst = Decimal(ran[0]["worst_case_usd"])
        left = BUDGET - Decimal(spent["preview_usd"])
        assert left < worst <= BUDGET
        assert refused["type"].endswith(":preview-budget-exhausted")
        assert (Decimal(refused["available_usd"]), Decimal(refused["needed_usd"])) == (left, worst)
        assert (Decimal(refused["budget_usd"]), refused["reserved_usd"]) == (BUDGET, "0")
        assert refused["errors"][0]["field"] == "run"
        assert 0 < int(response.headers["retry-after"]) <= 86400

    def test_concurrent_previews_never_hold_more_than_the_budget(
        self, make_budget_api: MakeApi, devstack: DevStack
    ) -> None:
        user, first = make_budget_api()
        apis = [first, *(make_budget_api(user)[1] for _ in range(3))]
        template = first.create_template(BUDGET_STEP)
        control = devstack.emulator_control()
        control.configure(latency_ms=1500)  # each preview holds its reservation a while
        try:
            with ThreadPoolExecutor(len(apis)) as pool:
                answers = list(pool.map(lambda api: run(api, template["id"]), apis))
        finally:
            control.reset()
        statuses = Counter(a.status_code for a in answers)
        assert set(statuses) <= {200, 429}, [a.text for a in answers]
        assert statuses[200] >= 1
        assert statuses[429] >= 1
        spent = wait_usage_settled(first, statuses[200])

        billed = control.billing(owner=user)
        assert len(billed) == statuses[200]
        spans = sorted((call["started_at"], call["at"]) for call in billed)
        for (_, ended), (began, _) in itertools.pairwise(spans):
            assert ended <= began, "two previews ran at once within a budget for one"
        assert picos(spent["preview_usd"]) == cost(billed) <= picos(PREVIEW_BUDGET_USD)


class TestAllRecordsReservedFirst:
    def test_a_preview_whose_records_do_not_all_fit_is_refused_before_any_runs(
        self, make_budget_api: MakeApi, devstack: DevStack
    ) -> None:
        user, api = make_budget_api()
        template = api.create_template(BUDGET_STEP)
        two = api.http.post(
            f"/templates/{template['id']}/preview",
            params={"run": "true"},
            json={"seed": SEED, "more_seeds": [SEED]},
        )
        refused = problem(two, 429)
        worst = Decimal(refused["needed_usd"]) / 2
        assert (Decimal(refused["available_usd"]), refused["reserved_usd"]) == (BUDGET, "0")
        assert worst <= BUDGET < 2 * worst
        # The first record's reservation, granted before the second was refused, is
        # given back at once (not when it would expire): nothing is held any more ...
        wait_until(
            lambda: usage(api, group_by="kind")["preview_reserved_usd"] == "0",
            what="the preview's reservations released",
            timeout=30,
        )
        assert devstack.emulator_control().billing(owner=user) == []
        # ... so a preview of one record runs at once, within the same budget.
        one = run(api, template["id"])
        assert one.status_code == 200, one.text
        spent = wait_usage_settled(api, 1)
        billed = devstack.emulator_control().billing(owner=user)
        assert len(billed) == 1
        assert picos(spent["preview_usd"]) == cost(billed) == picos(one.json()["cost_usd"])
