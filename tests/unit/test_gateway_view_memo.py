"""Job views built once per shared read: the gateway's JobViews."""

from __future__ import annotations

import pytest

from palette.common.ledger_view import LedgerView
from palette.gateway.job_views import job_view
from palette.gateway.view_memo import JobViews
from tests.unit.test_gateway_job_views import _doc

pytestmark = pytest.mark.unit


class TestJobViews:
    def test_the_same_document_and_ledger_give_the_kept_view(self) -> None:
        views, doc, ledger = JobViews(), _doc(), LedgerView.empty(10)
        first = views.view(doc, ledger)
        assert views.view(doc, ledger) is first
        assert first == job_view(doc, ledger)

    def test_a_new_read_of_the_document_builds_the_view_again(self) -> None:
        views, doc, ledger = JobViews(), _doc(), LedgerView.empty(10)
        first = views.view(doc, ledger)
        refreshed = {**doc, "records_done": 7}
        second = views.view(refreshed, ledger)
        assert second is not first
        assert second.records_done == 7

    def test_a_new_read_of_the_ledger_builds_the_view_again(self) -> None:
        views, doc = JobViews(), _doc()
        views.view(doc, LedgerView.empty(10))
        spent = LedgerView(budget=10, spent=4)
        assert views.view(doc, spent) == job_view(doc, spent)

    def test_views_beyond_the_bound_are_built_again(self) -> None:
        views, ledger = JobViews(max_views=1), LedgerView.empty(10)
        one, two = _doc(), {**_doc(), "_id": "j2"}
        first = views.view(one, ledger)
        views.view(two, ledger)
        assert views.view(one, ledger) is not first
