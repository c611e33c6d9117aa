"""``/usage``: what the caller spent, on jobs and on previews, by day, model, kind or template."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated

from litestar import Controller, get
from litestar.di import NamedDependency
from litestar.params import QueryParameter

from palette.common.messages import utcnow
from palette.gateway.openapi import problems
from palette.gateway.ports import GatewayRuntime
from palette.gateway.problems import invalid
from palette.gateway.schemas import UsageGroupBy, UsageView
from palette.gateway.usage import MAX_DAYS, usage_view

DEFAULT_DAYS = 30
DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_day(value: str | None, name: str) -> date | None:
    """A ``YYYY-MM-DD`` query value as a date (None when absent).

    Raises:
        Problem: 422 naming the parameter when the value is not such a date.
    """
    if value is None:
        return None
    try:
        if not DAY.fullmatch(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise invalid(name, f"{value[:40]!r} is not a day (YYYY-MM-DD)") from None


def day_range(first: date | None, last: date | None, today: date) -> tuple[date, date]:
    """The days asked for: ``last`` defaults to today, ``first`` to 30 days before ``last``.

    Raises:
        Problem: 422 when ``first`` is after ``last`` or the range is longer than ``MAX_DAYS``.
    """
    last = last or today
    first = first or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise invalid("from", f"{first.isoformat()} is after `to` ({last.isoformat()})")
    if (last - first).days + 1 > MAX_DAYS:
        raise invalid("from", f"the range may span at most {MAX_DAYS} days")
    return first, last


class UsageController(Controller):
    """The caller's own usage; nobody sees another user's."""

    path = "/usage"
    tags = ["usage"]

    @get(
        "/",
        operation_id="getUsage",
        summary="What you spent on jobs and previews, by day, model, kind or template",
        responses=problems(),
    )
    async def usage(
        self,
        runtime: NamedDependency[GatewayRuntime],
        owner: NamedDependency[str],
        first: Annotated[
            str | None,
            QueryParameter(
                name="from",
                format="date",
                description="First UTC day (`YYYY-MM-DD`); 30 days before `to` by default.",
            ),
        ] = None,
        last: Annotated[
            str | None,
            QueryParameter(
                name="to", format="date", description="Last UTC day, included; today by default."
            ),
        ] = None,
        group_by: Annotated[
            UsageGroupBy, QueryParameter(description="How rows are grouped.")
        ] = UsageGroupBy.DAY,
    ) -> UsageView:
        """Settled spend per group, each row for jobs or for previews (``kind``).

        Jobs count on the UTC day each lease was granted, previews on the day
        each was reserved; money previews still running hold is
        ``preview_reserved_usd``. Amounts are exact decimal USD strings.
        """
        days = day_range(parse_day(first, "from"), parse_day(last, "to"), utcnow().date())
        start = datetime.combine(days[0], time(), UTC)
        end = datetime.combine(days[1] + timedelta(days=1), time(), UTC)
        records = await runtime.repository.usage(owner, start, end)
        return usage_view(days[0], days[1], group_by, records)
