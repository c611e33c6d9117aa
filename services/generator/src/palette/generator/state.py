"""The mutable state of one partition attempt, shared by its parts."""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from palette.common import messages as m
from palette.common.pricing import TokenPrice
from palette.generator.budget import LeaseGuard
from palette.generator.claims import ClaimHandle
from palette.generator.pacing import ModelUnavailableError
from palette.generator.records import FinishedRecord
from palette.generator.runtime import GeneratorRuntime, Publish
from palette.generator.seed_draws import SeedDraws
from palette.generator.usage import RetryTally, UsageTally

log = structlog.get_logger("palette.generator.partition")


class PublishFailedError(Exception):
    """Publishing failed: the command must be redelivered, not answered."""


@dataclass(eq=False)
class AttemptState:
    """What an attempt has done so far and why it may have to stop."""

    msg: m.GeneratePartition
    rt: GeneratorRuntime
    publish: Publish
    guard: LeaseGuard
    claim: ClaimHandle = field(default_factory=ClaimHandle.unclaimed)
    """This delivery's claim on the lease (its holder token goes with every call)."""
    prices: dict[str, TokenPrice] = field(default_factory=dict)
    usage: UsageTally = field(default_factory=UsageTally)
    """Everything billed under the lease in this attempt (re-announced parts too)."""
    orphan: UsageTally = field(default_factory=UsageTally)
    """Billed calls of records in no part yet."""
    retries: RetryTally = field(default_factory=RetryTally)
    """Throttled and retried call attempts under the lease in this attempt (re-announced too)."""
    unannounced: RetryTally = field(default_factory=RetryTally)
    """Throttled and retried call attempts in no part yet (the next part announces them)."""
    covered: int = 0
    """Records of the range already in parts when the attempt started."""
    written: int = 0
    """Records this attempt wrote in parts."""
    stopped: bool = False
    exhausted: bool = False
    paused: str | None = None
    """Why the attempt pauses (a model throttled every call for too long)."""
    needed: int = 0
    failure: tuple[str, bool] | None = None
    fatal: BaseException | None = None
    observed: dict[str, int] = field(default_factory=dict)
    """Largest worst case seen per step."""
    number: int = 0
    """The attempt's place among this process's attempts: its calls' priority."""
    draws: SeedDraws = field(init=False)
    """Which seed each record draws, and its variables (``seed_draws.load_draws``)."""
    first_steps: dict[int, tuple[str, str | None]] = field(default_factory=dict)
    """Seed position -> its first step's rendered prompt and system text."""
    partial: dict[int, FinishedRecord] = field(default_factory=dict)
    """Incomplete records of the range an earlier attempt paid for: resumed, not redone."""

    def __post_init__(self) -> None:
        self.draws = SeedDraws(self.msg, None)

    def count_retries(self, *, throttled: int = 0, retried: int = 0, waited: float = 0.0) -> None:
        """Count call attempts refused for quota, attempts made again, seconds waited for quota."""
        waited_ms = round(waited * 1000)
        for tally in (self.retries, self.unannounced):
            tally.throttled += throttled
            tally.retried += retried
            tally.waited_ms += waited_ms

    async def emit(self, message: m.Message) -> None:
        """Publish, marking a failure as one that only a redelivery can repair."""
        try:
            await self.publish(message)
        except Exception as exc:
            raise PublishFailedError(f"publishing {type(message).__name__} failed") from exc

    def fail(self, error: str, *, retryable: bool) -> None:
        """Keep the first non-retryable failure, else the first failure."""
        if self.failure is None or (self.failure[1] and not retryable):
            self.failure = (error, retryable)
            log.warning("partition_failing", error=error, retryable=retryable)

    def outcome(self, missing: int) -> m.PartitionOutcome | None:
        """How the attempt ends, ``missing`` records short: None when it failed (``failure``)."""
        if self.failure is None and missing and not (self.stopped or self.exhausted or self.paused):
            self.failure = (f"{missing} records of the partition are still missing", True)
        if self.stopped:
            return m.PartitionOutcome.JOB_STOPPED
        if self.failure is not None:
            return None
        if self.paused is not None:
            return m.PartitionOutcome.MODEL_UNAVAILABLE
        if self.exhausted:
            return m.PartitionOutcome.LEASE_EXHAUSTED
        return m.PartitionOutcome.DONE

    def halt(self, cause: Exception) -> None:
        """No new record: the job stopped, or a model is unavailable (the attempt pauses)."""
        if not isinstance(cause, ModelUnavailableError):
            self.stopped = True
        elif self.paused is None:
            self.paused = str(cause)
            log.warning("partition_pausing", reason=self.paused)

    def halted(self) -> bool:
        """Whether no new record may start."""
        if self.rt.stops.is_stopped(self.msg.job_id):
            self.stopped = True
        if self.rt.draining and self.failure is None:
            self.fail("the generator is shutting down", retryable=True)
        return (
            self.stopped
            or self.exhausted
            or self.paused is not None
            or self.failure is not None
            or self.fatal is not None
        )
