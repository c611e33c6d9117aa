"""Model calls of one record: stop check, reservation, retries, settlement."""

from __future__ import annotations

import structlog

from palette.common import messages as m
from palette.common.templates import Step
from palette.generator.bedrock import ModelCallError, ModelRequest, ModelResult
from palette.generator.budget import LeaseGuard
from palette.generator.runtime import Runtime
from palette.generator.usage import UsageTally

log = structlog.get_logger("palette.generator.calls")


class Stopped(Exception):
    """The job is stopped: no further model call."""


class Exhausted(Exception):
    """A call's worst case does not fit in what is left of the lease."""


class ModelCalls:
    """Makes the calls of one record under an attempt's lease.

    Calls wait for a slot with priority (``attempt_no``, ``record``): the
    generator's oldest attempt, then its lowest record, goes first.
    """

    def __init__(
        self,
        rt: Runtime,
        msg: m.GeneratePartition,
        guard: LeaseGuard,
        usage: UsageTally,
        record: int,
        attempt_no: int = 0,
    ) -> None:
        self._rt = rt
        self._msg = msg
        self._guard = guard
        self._usage = usage
        self._record = record
        self._priority = (attempt_no, record)

    async def call(self, step: Step, prompt: str, system: str | None, worst: int) -> ModelResult:
        """One step's call with up to ``max_call_attempts`` attempts.

        Before every attempt: wait for a call slot, check the job is not
        stopped, reserve ``worst`` (Exhausted if it does not fit). The
        reservation is released to the cost of the response's usage, to zero
        when the call was refused before the model ran, and is held for the
        rest of the attempt when the model may have run without an answer.

        Raises:
            Stopped: the job stopped before an attempt.
            Exhausted: the call does not fit in the lease.
            ModelCallError: non-retryable, or retryable after the last attempt.
        """
        rt, msg = self._rt, self._msg
        price = rt.pricing.price(step.model)
        attempts = rt.settings.max_call_attempts
        for attempt in range(1, attempts + 1):
            request = ModelRequest(
                model_id=step.model,
                prompt=prompt,
                system=system,
                max_tokens=step.max_tokens,
                temperature=step.temperature,
                metadata={
                    "job_id": msg.job_id,
                    "partition": str(msg.partition),
                    "attempt": str(msg.attempt),
                    "lease_id": msg.lease_id,
                    "record": str(self._record),
                    "step": step.id,
                    "call_attempt": str(attempt),
                },
            )
            async with rt.call_slots.hold(self._priority):
                if rt.stops.is_stopped(msg.job_id):
                    raise Stopped
                reservation = self._guard.try_reserve(worst)
                if reservation is None:
                    raise Exhausted
                try:
                    result = await rt.models.converse(request)
                except ModelCallError as exc:
                    if exc.maybe_billed:
                        self._guard.hold(reservation)
                    else:
                        self._guard.release(reservation)
                    error = exc
                except BaseException:
                    self._guard.release(reservation)
                    raise
                else:
                    cost = price.cost(result.input_tokens, result.output_tokens)
                    overrun = self._guard.settle(reservation, cost)
                    self._usage.add(step.id, step.model, result.input_tokens, result.output_tokens)
                    if overrun:
                        log.error(
                            "worst_case_exceeded",
                            record=self._record,
                            step=step.id,
                            worst=worst,
                            cost=cost,
                        )
                    return result
            if not error.retryable or attempt == attempts:
                raise error
            delay = rt.backoff(attempt)
            log.info(
                "model_call_retry",
                record=self._record,
                step=step.id,
                attempt=attempt,
                error=str(error),
                delay=round(delay, 3),
            )
            if await rt.stops.sleep(msg.job_id, delay):
                raise Stopped
        raise AssertionError("unreachable")  # pragma: no cover
