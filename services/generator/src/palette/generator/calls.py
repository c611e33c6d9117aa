"""Model calls of one record: quota, stop check, claim check, reservation, retries, settlement."""

from __future__ import annotations

from typing import Any

import structlog

from palette.common.output_schema import OutputInvalidError
from palette.common.pricing import TokenPrice
from palette.common.service_tiers import ServiceTier, rated_table
from palette.common.templates import Step
from palette.common.token_bounds import input_token_bound
from palette.generator import metrics
from palette.generator.bedrock import ModelCallError, ModelRequest, ModelResult
from palette.generator.metrics import THROTTLE_CODES
from palette.generator.pacing import ModelUnavailableError, Ticket
from palette.generator.quota_pacer import ModelPacer
from palette.generator.state import AttemptState
from palette.generator.structured import StructuredOutput

log = structlog.get_logger("palette.generator.calls")


class Stopped(Exception):
    """The job is stopped: no further model call."""


class Exhausted(Exception):
    """A call's worst case does not fit in what is left of the lease."""


class InvalidOutputError(ModelCallError):
    """A structured step's model gave no answer its schema validates in the calls allowed."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True, code="InvalidOutput", maybe_billed=False)


def no_valid_output(step: Step, calls: int, problem: str) -> str:
    """Why a record is rejected as ``invalid_output``: its step's last answer was invalid too."""
    return f"step {step.id!r}: no valid output in {calls} calls: {problem}"


def checked_answer(
    state: AttemptState,
    record: int,
    step: Step,
    output: StructuredOutput | None,
    result: ModelResult,
    call: int,
    rate: str = "",
) -> Any:
    """An answer's value (online or a batch entry's): its text, or JSON its schema validates.

    An invalid answer was billed like any other: its usage becomes orphan usage
    at ``rate`` (the record's next part reports it), and it is counted.

    Raises:
        OutputInvalidError: the answer does not parse, or its schema does not validate it.
    """
    if output is None:
        return result.text
    try:
        return output.parse(result.text, result.tool_input)
    except OutputInvalidError as exc:
        cached = (result.cache_read_tokens, result.cache_write_tokens)
        i, o = result.input_tokens, result.output_tokens
        state.orphan.add(step.id, step.model, i, o, 1, *cached, rate=rate)
        metrics.INVALID_OUTPUTS.labels(step.model).inc()
        log.info("invalid_output", record=record, step=step.id, call=call, error=str(exc))
        raise


class ClaimLapsedError(Exception):
    """The claim on the lease is not certainly this attempt's any more: no further call."""


class ModelCalls:
    """Makes the calls of one record under an attempt's lease.

    Calls wait for a slot with priority (the attempt's number, the record): the
    generator's oldest attempt, then its lowest record, goes first. ``tier``
    sets the service tier of calls made at another rate than the attempt's (a
    batch-mode partition's online calls: ``default``): they are sent at it,
    priced at it, and their usage rows carry it as their rate.
    """

    def __init__(self, state: AttemptState, record: int, tier: ServiceTier | None = None) -> None:
        self._state = state
        self._record = record
        self._priority = (state.number, record)
        self._tier = tier

    def price(self, model_id: str) -> TokenPrice:
        """A call's price: the attempt's own, or the table's at ``tier``."""
        if self._tier is None:
            return self._state.prices[model_id]
        return rated_table(self._state.rt.pricing, self._tier.value).price(model_id)

    def _request(
        self,
        step: Step,
        prompt: str,
        system: str | None,
        attempt: int,
        output: StructuredOutput | None,
    ) -> ModelRequest:
        msg = self._state.msg
        tier = (self._tier or msg.service_tier).value
        # The tier rides in requestMetadata too, so the invocation log prices a call as billed.
        extra = {} if tier == "default" else {"service_tier": tier}
        return ModelRequest.of_step(
            step,
            prompt,
            system,
            output=output,
            metadata={
                "job_id": msg.job_id,
                "partition": str(msg.partition),
                "attempt": str(msg.attempt),
                "lease_id": msg.lease_id,
                "record": str(self._record),
                "step": step.id,
                "call_attempt": str(attempt),
                "call_id": self._state.claim.call_id(),
                "holder": self._state.claim.holder,
                **extra,
            },
            service_tier=tier,
        )

    async def answer(
        self,
        step: Step,
        prompt: str,
        system: str | None,
        worst: int,
        output: StructuredOutput | None,
    ) -> tuple[ModelResult, Any]:
        """A step's answer and its value: the text, or JSON its schema validates.

        An answer its schema does not validate is asked for again, up to
        ``max_output_attempts`` calls in all; each call is reserved, billed and
        accounted (an invalid one's usage is orphan usage: the record's next
        part reports it) and each call after the first counts as retried.

        Raises:
            InvalidOutputError: no valid answer after the last call (the record
                is rejected as ``invalid_output``; its calls stay in the usage).
            And whatever ``call`` raises.
        """
        if output is None:
            result = await self.call(step, prompt, system, worst)
            return result, result.text
        state = self._state
        tries = state.rt.settings.max_output_attempts
        rate = "" if self._tier is None else self._tier.value
        for n in range(1, tries + 1):
            if n > 1:
                state.count_retries(retried=1)
            result = await self.call(step, prompt, system, worst, output)
            try:
                return result, checked_answer(state, self._record, step, output, result, n, rate)
            except OutputInvalidError as exc:
                problem = str(exc)
        raise InvalidOutputError(no_valid_output(step, tries, problem))

    async def call(
        self,
        step: Step,
        prompt: str,
        system: str | None,
        worst: int,
        output: StructuredOutput | None = None,
    ) -> ModelResult:
        """One step's call, throttles waited out, up to ``max_call_attempts`` failed attempts.

        Before every attempt: take the call's reservation from the model's
        quota bucket (waiting for it if need be), wait for a call slot, check
        the job is not stopped and the claim is still this attempt's, reserve
        ``worst`` (Exhausted if it does not fit). The reservation is released
        to the cost of the response's usage, to zero when the call was refused
        before the model ran, and is held for the rest of the attempt, under
        the call's ``call_id``, when the model may have run without an answer.
        A throttled attempt is counted (``throttled``) and made again once the
        bucket allows, without counting toward ``max_call_attempts``.

        Raises:
            Stopped: the job stopped before an attempt.
            Exhausted: the call does not fit in the lease.
            ClaimLapsedError: the claim on the lease may have passed to another generator.
            ModelUnavailableError: the model throttled every call for too long.
            ModelCallError: non-retryable, or retryable after the last attempt.
        """
        rt, msg = self._state.rt, self._state.msg
        price = self.price(step.model)
        pacer = rt.quotas.pacer(step.model)
        ask = input_token_bound(prompt, step.bound_system(system)) + step.max_tokens
        attempts = rt.settings.max_call_attempts
        failures = attempt = 0
        while True:
            attempt += 1
            ticket = await self._pace(pacer, ask)
            outcome = await self._attempt(
                step, prompt, system, worst, attempt, price, ticket, output
            )
            if isinstance(outcome, ModelResult):
                return outcome
            if outcome.code in THROTTLE_CODES:
                self._throttled(pacer, outcome)
                continue
            failures += 1
            if not outcome.retryable or failures >= attempts:
                raise outcome
            delay = rt.backoff(failures)
            log.info(
                "model_call_retry",
                record=self._record,
                step=step.id,
                attempt=attempt,
                error=str(outcome),
                delay=round(delay, 3),
            )
            if await rt.stops.sleep(msg.job_id, delay):
                raise Stopped

    def _throttled(self, pacer: ModelPacer, outcome: ModelCallError) -> None:
        """Count a throttle; raise when the call must not wait it out any longer.

        A generator shutting down ends the call (a retryable failure). A model
        throttled without an answer for ``model_unavailable_seconds``, or an
        attempt that pauses for it already, ends it with ModelUnavailableError
        (and every call waiting for the model's bucket with it).
        """
        state = self._state
        state.count_retries(throttled=1)
        if state.rt.draining:
            raise outcome
        unavailable = pacer.unavailable_for()
        if state.paused is None and unavailable < state.rt.settings.model_unavailable_seconds:
            return
        error = ModelUnavailableError(pacer.model_id, unavailable)
        if state.paused is None:
            pacer.fail_waiters(error)
        raise error

    async def _pace(self, pacer: ModelPacer, ask: int) -> Ticket:
        """The call's reservation in its model's bucket, waited for if need be."""
        ticket = pacer.try_take(ask)
        if ticket is not None:
            return ticket
        state = self._state
        ticket = await state.rt.stops.race(state.msg.job_id, pacer.take(ask))
        if ticket is None:
            raise Stopped
        state.count_retries(waited=ticket.waited)
        metrics.QUOTA_WAIT.labels(pacer.model_id).inc(ticket.waited)
        return ticket

    async def _attempt(
        self,
        step: Step,
        prompt: str,
        system: str | None,
        worst: int,
        attempt: int,
        price: TokenPrice,
        ticket: Ticket,
        output: StructuredOutput | None = None,
    ) -> ModelResult | ModelCallError:
        """One attempt of a call under a slot: its result, or the error that ended it."""
        state = self._state
        rt, guard = state.rt, state.guard
        pacer = rt.quotas.pacer(step.model)
        request = self._request(step, prompt, system, attempt, output)
        sent = False
        try:
            async with rt.call_slots.hold(self._priority):
                if rt.stops.is_stopped(state.msg.job_id):
                    raise Stopped
                if not state.claim.valid():
                    raise ClaimLapsedError
                reservation = guard.try_reserve(worst)
                if reservation is None:
                    raise Exhausted
                if attempt > 1:
                    state.count_retries(retried=1)
                sent = True
                try:
                    result = await rt.models.converse(request)
                except ModelCallError as exc:
                    pacer.failed(ticket, exc.code, exc.maybe_billed)
                    if exc.maybe_billed:
                        guard.hold(reservation, request.metadata["call_id"])
                    else:
                        guard.release(reservation)
                    return exc
                except BaseException:  # cancelled or a bug: the request may have gone out
                    guard.hold(reservation, request.metadata["call_id"])
                    raise
        finally:
            if not sent:
                pacer.release(ticket)
        # Cache reads do not count toward Bedrock's token quotas; cache writes do.
        pacer.settle(ticket, result.input_tokens + result.cache_write_tokens, result.output_tokens)
        cached = (result.cache_read_tokens, result.cache_write_tokens)
        cost = price.cost(result.input_tokens, result.output_tokens, *cached)
        overrun = guard.settle(reservation, cost)
        rate = "" if self._tier is None else self._tier.value
        state.usage.add(
            step.id, step.model, result.input_tokens, result.output_tokens, 1, *cached, rate=rate
        )
        if overrun:
            log.error(
                "worst_case_exceeded", record=self._record, step=step.id, worst=worst, cost=cost
            )
        return result
