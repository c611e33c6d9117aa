"""The integration tests' polling helper: the value it waited for, or a failure naming it."""

from __future__ import annotations

import itertools

import pytest

from tests.integration.waiting import wait_until, wait_until_async

pytestmark = [pytest.mark.unit, pytest.mark.timeout(10)]


class TestWaitUntil:
    def test_returns_the_first_truthy_value_of_the_check(self) -> None:
        answers = iter([None, 0, [], {"status": "COMPLETED"}])
        assert wait_until(lambda: next(answers), what="a job", interval=0) == {
            "status": "COMPLETED"
        }

    def test_a_timeout_fails_naming_what_it_waited_for(self) -> None:
        with pytest.raises(AssertionError, match=r"timed out after 0.05s waiting for job 7 to end"):
            wait_until(lambda: False, what="job 7 to end", timeout=0.05, interval=0.01)

    def test_a_callable_what_is_asked_only_on_the_timeout(self) -> None:
        asked = itertools.count(1)
        with pytest.raises(AssertionError, match="job 7 to end: still RUNNING, asked 1x"):
            wait_until(
                lambda: False,
                what=lambda: f"job 7 to end: still RUNNING, asked {next(asked)}x",
                timeout=0.05,
                interval=0.01,
            )

    def test_an_assertion_in_the_check_fails_at_once(self) -> None:
        calls = itertools.count(1)

        def check() -> bool:
            assert next(calls) < 2, "the process died"
            return False

        with pytest.raises(AssertionError, match="the process died"):
            wait_until(check, what="never", timeout=30, interval=0)


class TestWaitUntilAsync:
    async def test_awaits_a_coroutine_check_until_it_is_truthy(self) -> None:
        answers = iter([0, 0, 3])

        async def check() -> int:
            return next(answers)

        assert await wait_until_async(check, what="three", interval=0) == 3

    async def test_takes_a_plain_check_and_fails_naming_what_it_waited_for(self) -> None:
        with pytest.raises(AssertionError, match="waiting for the loop probe to tick"):
            await wait_until_async(
                lambda: [], what="the loop probe to tick", timeout=0.05, interval=0.01
            )
