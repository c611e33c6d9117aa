"""One model's local token bucket: every call takes its reservation before it is sent.

A call takes what Bedrock will reserve for it (input tokens bounded from the prompt,
plus ``maxTokens``; one request where requests count); when it ends the bucket is
corrected as Bedrock corrects its own: to input + output x burndown when answered, to
nothing when refused before the model ran; a call maybe billed without an answer keeps
its reservation. The bucket refills at the model's rate (``pacing.AimdRate``: this
generator's share of the quota times the throttle factor; unknown quota: unlimited
until a throttle that answers to the rate, ``throttle_share``). The fast path
(``try_take``, ``settle``) is arithmetic, no I/O; a call that must wait queues first
come, first served, woken by a timer. The pacer also keeps what metrics and shares
need: throttles, time waited, recent use, ``unavailable_for``.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import time
from collections.abc import Callable

import structlog

from palette.generator.metrics import THROTTLE_CODES
from palette.generator.pacing import AimdParams, AimdRate, ModelUnavailableError, Ticket
from palette.generator.throttle_share import ThrottleShare

log = structlog.get_logger("palette.generator.quotas")

BURST_SECONDS = 1.0
"""The bucket holds this long of its rate, or two of its largest calls if more (a full
bucket admits any one call)."""
PROBE_SECONDS = 10.0
"""However throttled, the rate lets one call through this often."""
SLACK = 1e-9
"""Float refill may leave a bucket paced exactly a hair short."""
ADVANCE_SECONDS = 0.1
"""The rate's additive increase is applied at most this often."""
DEMAND_HEADROOM = 1.25
"""A generator that is not waiting asks for this much more than it used lately."""
RECENT_SECONDS = 3
"""A throttle decreases the rate from the calls' use over this many whole seconds before it."""


class ModelPacer:
    """The bucket of one model id in this generator.

    Args:
        model_id: the model (or inference profile) id.
        quota: the model's tokens per minute from the quota table; None: unknown.
        rpm: its requests per minute (None: not counted).
        burndown: quota tokens per output token.
        target: the fraction of the quota the generators aim to use.
        clock: seconds, monotonic.
    """

    def __init__(
        self,
        model_id: str,
        quota: float | None,
        rpm: float | None = None,
        burndown: int = 1,
        target: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        params: AimdParams | None = None,
    ) -> None:
        self.model_id = model_id
        self.quota = quota
        self.target = target
        self.burndown = burndown
        self._clock = clock
        now = clock()
        self._requests_per_token = rpm / quota if rpm is not None and quota else None
        self.control = AimdRate(None if quota is None else quota * target, now, params)
        self.ready = quota is None
        """A known quota waits for its first share (``set_share``)."""
        self._level = 0.0
        self._requests = 0.0
        self._updated = now
        self._advanced = now
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self._share = ThrottleShare()
        self._largest = 0
        self._streak: float | None = None
        self.last_take = now
        self._waited_at = -math.inf
        self.throttles = 0
        self.waited_seconds = 0.0

    # ---------------------------------------------------------------- state

    @property
    def rate(self) -> float | None:
        """Tokens per minute this generator may use now (None: unlimited)."""
        return self.control.rate

    @property
    def share(self) -> float | None:
        """This generator's share of a known quota, tokens per minute."""
        return self.control.cap

    @property
    def waiting(self) -> int:
        """Calls waiting for the bucket."""
        return len(self._waiters)

    def used_per_minute(self, now: float | None = None) -> float:
        """Quota tokens the model's answered calls used lately, per minute."""
        return self._share.used_per_minute(self._clock() if now is None else now)

    def demand(self, now: float, interval: float) -> float | None:
        """What this generator asks of the quota (None: as much as it can get)."""
        if self._waiters or now - self._waited_at < interval:
            return None
        return self.used_per_minute(now) * DEMAND_HEADROOM

    def unavailable_for(self, now: float | None = None) -> float:
        """Seconds the model has throttled every call since its last answer."""
        if self._streak is None:
            return 0.0
        return (self._clock() if now is None else now) - self._streak

    # --------------------------------------------------------------- bucket

    def _full(self, per_second: float) -> float:
        """The bucket's size: a second of its rate, and room for two of its largest calls."""
        return max(per_second * BURST_SECONDS, 2.0 * self._largest)

    def _refill(self, now: float) -> None:
        rate = self.control.rate
        if now - self._advanced >= ADVANCE_SECONDS:
            self._advanced = now
            self.control.advance(now)
        dt = now - self._updated
        self._updated = now
        if rate is None or dt <= 0:
            return
        per_second = rate / 60.0
        self._level = min(self._full(per_second), self._level + per_second * dt)
        if self._requests_per_token is not None:
            requests = per_second * self._requests_per_token
            self._requests = min(max(requests * BURST_SECONDS, 2.0), self._requests + requests * dt)

    def _fits(self, tokens: int) -> bool:
        rate = self.control.rate
        if rate is None:
            return True
        full = self._full(rate / 60.0)
        level = self._level + SLACK * max(1.0, full)
        if not (level >= tokens or level >= full):
            return False
        return self._requests_per_token is None or self._requests + SLACK >= 1.0

    def _take(self, tokens: int) -> None:
        if self.control.rate is not None:
            self._level -= tokens
            self._requests -= 1.0

    def _wait_seconds(self, tokens: int) -> float:
        rate = self.control.rate
        if rate is None:
            return 0.0
        per_second = rate / 60.0
        need = (min(tokens, self._full(per_second)) - self._level) / per_second
        if self._requests_per_token is not None:
            requests = per_second * self._requests_per_token
            need = max(need, (1.0 - self._requests) / requests)
        return max(need, 0.001)

    def _note_ask(self, tokens: int) -> None:
        if tokens > self._largest:
            self._largest = tokens
            self._set_minimum()

    def _set_minimum(self) -> None:
        """The rate's least: a call every ``PROBE_SECONDS``, at most the share."""
        least = self._largest * 60.0 / PROBE_SECONDS
        cap = self.control.cap
        self.control.minimum = least if cap is None else min(least, cap)

    def try_take(self, tokens: int) -> Ticket | None:
        """Take ``tokens`` now if the bucket holds them and nobody waits; else None."""
        now = self._clock()
        self.last_take = now
        if tokens > self._largest:
            self._note_ask(tokens)
        if not self.ready or self._waiters:
            return None
        if self.control.rate is not None:
            self._refill(now)
            if not self._fits(tokens):
                return None
            self._take(tokens)
        self._share.asked(now, tokens)
        return Ticket(tokens, 0.0, now, self.control.rate)

    async def take(self, tokens: int) -> Ticket:
        """Wait until the bucket holds ``tokens`` (after the calls queued before), and take them.

        Raises:
            ModelUnavailableError: the model was found unavailable while this call waited.
        """
        started = self._clock()
        self.last_take = started
        self._note_ask(tokens)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((tokens, future))
        self._wake()
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled() and future.exception() is None:
                self._give_back(tokens, 1.0)  # handed the tokens just as it was cancelled
            else:
                with contextlib.suppress(ValueError):
                    self._waiters.remove((tokens, future))
                if self._waiters:
                    self._wake()
            raise
        finally:
            ended = self._clock()
            self._waited_at = ended
        waited = ended - started
        self._share.asked(ended, tokens)
        self.waited_seconds += waited
        return Ticket(tokens, waited, ended, self.control.rate)

    def _wake(self) -> None:
        """Hand the bucket to the waiters in order; set a timer for the first that must wait."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.ready:
            return
        now = self._clock()
        self._refill(now)
        while self._waiters:
            tokens, future = self._waiters[0]
            if future.done():
                self._waiters.popleft()
                continue
            if not self._fits(tokens):
                delay = self._wait_seconds(tokens)
                self._timer = asyncio.get_running_loop().call_later(delay, self._wake)
                return
            self._waiters.popleft()
            self._take(tokens)
            future.set_result(None)

    def _give_back(self, tokens: float, requests: float = 0.0) -> None:
        if self.control.rate is not None:
            self._level = min(self._full(self.control.rate / 60.0), self._level + tokens)
            self._requests += requests
        if self._waiters:
            self._wake()

    # ------------------------------------------------------------ outcomes

    def settle(self, ticket: Ticket, input_tokens: int, output_tokens: int) -> None:
        """The call was answered: correct its reservation to what Bedrock counts."""
        used = input_tokens + output_tokens * self.burndown
        self._ended(self._clock(), ticket, False, used)
        self.control.succeeded()
        self._streak = None
        self._give_back(ticket.tokens - used)

    def release(self, ticket: Ticket) -> None:
        """The call was refused before the model ran (not billed): give it all back."""
        self._give_back(ticket.tokens)

    def throttled(self, ticket: Ticket) -> bool:
        """The call was throttled: slow down unless the throttles do not answer to the rate.

        Returns whether the rate decreased. Bedrock took nothing, but the bucket keeps the
        reservation (emptied when the rate decreases), so the call is made again at the
        bucket's pace, unless the rate does not answer for the throttle (given back).
        """
        now = self._clock()
        self.throttles += 1
        if self._streak is None:
            self._streak = now
        share, unlimited, decreased = self._share, self.control.rate is None, False
        background = self._ended(now, ticket, True)
        if not (background or (background := share.explained(now))):
            used = share.used_lately(now, RECENT_SECONDS)
            answered = used > 0
            if not answered and unlimited:  # nothing answered yet: what the calls asked
                used = share.asked_per_minute(now)
            run = share.in_run(now)
            least = share.least if run else 0.0
            decreased = self.control.throttled(now, used, not run, least, answered)
        if decreased:
            share.decreased(now, self.control.reference)
            self._log("quota_rate_decreased", throttles=self.throttles)
            if unlimited:
                self._updated = now
            self._level = min(self._level, 0.0)
            self._requests = min(self._requests, 0.0)
        if background:
            self._give_back(ticket.tokens, 1.0)
        elif self._waiters:
            self._wake()
        return decreased

    def failed(self, ticket: Ticket, code: str, maybe_billed: bool) -> None:
        """The call brought no answer: a throttle, refused unbilled, or of unknown outcome."""
        if code in THROTTLE_CODES:
            self.throttled(ticket)
        elif not maybe_billed:
            self.release(ticket)
        # else it may have run: Bedrock keeps its reservation, and so does the bucket

    def _ended(self, now: float, ticket: Ticket, throttled: bool, used: float = 0.0) -> bool:
        """Tell the throttle share; whether its verdict undid the last decreases."""
        if self._share.ended(now, ticket.sent, ticket.rate, throttled, used) is not False:
            return False
        self.control.undo(now)
        self._log("quota_rate_restored", background=round(self._share.background, 3))
        return True

    def _log(self, event: str, **fields: object) -> None:
        rate, share = (None if v is None else round(v) for v in (self.rate, self.share))
        log.info(event, model=self.model_id, rate=rate, share=share, **fields)

    def set_share(self, share: float, holders: int = 1) -> None:
        """This generator's fair share of the known quota (tokens per minute) from now on.

        ``holders``: the generators sharing the quota, this one included.
        """
        self.control.set_cap(share, self._clock(), holders > 1)
        self._set_minimum()
        self.ready = True
        if self._waiters:
            self._wake()

    def fail_waiters(self, error: ModelUnavailableError) -> None:
        """End every waiting call with ``error``; the next throttle starts a new streak."""
        while self._waiters:
            _, future = self._waiters.popleft()
            if not future.done():
                future.set_exception(error)
        self._streak = None
