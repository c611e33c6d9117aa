"""A partition attempt end to end against in-memory fakes (no broker, no stores)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from palette.common import keys
from palette.common import messages as m
from palette.common.pricing import load_pricing
from palette.common.quotas import QuotaEntry, QuotaTable
from palette.common.seeds import pick_seeds, seed_index
from palette.common.templates import TemplateSpec
from palette.generator import partition
from palette.generator.bedrock import ModelCallError, ModelRequest, ModelResult
from palette.generator.claims import ClaimHandle
from palette.generator.partition import end_message_id, run_partition
from palette.generator.quota_shares import QuotaBoard
from palette.generator.records import FinishedRecord, PartMeta, decode_line, encode_part
from palette.generator.rendering import Renderer
from palette.generator.runtime import GeneratorRuntime
from palette.generator.settings import GeneratorSettings
from palette.generator.slots import CallSlots
from palette.generator.stops import StopRegistry
from palette.generator.storage import StoredPart
from tests.integration.waiting import wait_until_async

pytestmark = pytest.mark.unit

MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"
PRICING = load_pricing(None)
PRICE = PRICING.price(MODEL)
AMPLE_QUOTA = QuotaTable(
    {"us-east-1": {MODEL: QuotaEntry(tpm=10**12, source="test", as_of="2026-12-07")}}
)
SEEDS = [{"topic": f"topic {i}"} for i in range(7)]


def template(prompt_b: str = "More on {{ steps.a.output }}", model: str = MODEL) -> TemplateSpec:
    return TemplateSpec.model_validate(
        {
            "steps": [
                {"id": "a", "model": model, "prompt": "About {{ topic }}", "max_tokens": 20},
                {"id": "b", "model": model, "prompt": prompt_b, "max_tokens": 30},
            ]
        }
    )


def chance_template() -> TemplateSpec:
    """One step whose prompt draws by chance."""
    prompt = "{{ topic }} #{{ range(90000) | random }}-{{ range(90000) | random }}"
    return TemplateSpec.model_validate(
        {"steps": [{"id": "a", "model": MODEL, "prompt": prompt, "max_tokens": 20}]}
    )


class FakeStorage:
    def __init__(self) -> None:
        self.parts: dict[str, tuple[bytes, PartMeta]] = {}
        self.incomplete: dict[int, bytes] = {}

    def put_incomplete(self, job_id: str, record: FinishedRecord) -> None:
        self.incomplete[record.index] = encode_part(job_id, [record])

    def read_incomplete(self, job_id: str, start: int, end: int) -> dict[int, FinishedRecord]:
        return {i: decode_line(body) for i, body in self.incomplete.items() if start <= i < end}

    def drop_incomplete(self, job_id: str, indices: list[int]) -> None:
        for index in indices:
            del self.incomplete[index]

    def list_parts(self, job_id: str, start: int, end: int) -> list[StoredPart]:
        found = []
        for key in sorted(self.parts):
            first = keys.part_start(key)
            if key.startswith(keys.parts_prefix(job_id)) and start <= first < end:
                found.append(StoredPart(key, first, self.parts[key][1]))
        return found

    def put_part(self, key: str, body: bytes, meta: PartMeta) -> bool:
        if key in self.parts:
            return self.parts[key][1].message == meta.message
        self.parts[key] = (body, meta)
        return True

    def read_seeds(self, key: str, wanted: set[int]) -> dict[int, dict[str, Any]]:
        return pick_seeds(iter(SEEDS), wanted)


class FakeModels:
    """Answers with fixed usage; ``script`` gives errors (None: an answer) for the next calls."""

    def __init__(self, script: list[ModelCallError | None] | None = None) -> None:
        self.requests: list[ModelRequest] = []
        self.script = list(script or [])
        self.on_call: Any = None

    async def converse(self, request: ModelRequest) -> ModelResult:
        self.requests.append(request)
        if self.on_call is not None:
            self.on_call(len(self.requests))
        await asyncio.sleep(0.001)
        if self.script and (error := self.script.pop(0)) is not None:
            raise error
        return ModelResult(text=f"answer to {request.prompt[:20]}", input_tokens=8, output_tokens=9)


class FakeJobs:
    def __init__(self, status: m.JobStatus | None = m.JobStatus.RUNNING) -> None:
        self.value = status

    async def status(self, job_id: str) -> m.JobStatus | None:
        return self.value


class FakeLeases:
    def __init__(self, closed: bool = False) -> None:
        self.closed = closed

    async def is_closed(self, lease_id: str) -> bool:
        return self.closed


def runtime(
    storage: FakeStorage,
    models: FakeModels,
    jobs: FakeJobs | None = None,
    leases: FakeLeases | None = None,
    concurrency: int = 4,
    part_flush_seconds: float = 2.0,
    part_size: int = 5,
) -> GeneratorRuntime:
    settings = GeneratorSettings(
        concurrency=concurrency,
        max_call_attempts=3,
        backoff_base=0.001,
        backoff_max=0.002,
        status_poll_seconds=0,
        part_flush_seconds=part_flush_seconds,
        part_size=part_size,
    )
    return GeneratorRuntime(
        settings=settings,
        storage=storage,  # type: ignore[arg-type]
        models=models,
        jobs=jobs or FakeJobs(),  # type: ignore[arg-type]
        leases=leases or FakeLeases(),  # type: ignore[arg-type]
        stops=StopRegistry(),
        pricing=PRICING,
        call_slots=CallSlots(concurrency),
        claims=None,  # type: ignore[arg-type]  # run_partition does not claim; the handler does
        # Every render on the loop: these tests start no render process however loaded
        # the machine (tests/integration/test_generator_rendering.py covers those).
        renderer=Renderer(settings.render_seconds, settings.render_seconds, 1),
        broker=None,  # type: ignore[arg-type]  # run_partition publishes through its argument
        # The model's quota is known and far above these calls: a throttle is made again
        # within a fraction of a second (tests/unit/test_generator_pacing.py paces for real).
        quotas=QuotaBoard(AMPLE_QUOTA, "us-east-1", 1.0, None, 1.0),
    )


def command(**overrides: Any) -> m.GeneratePartition:
    fields: dict[str, Any] = {
        "job_id": "job-1",
        "partition": 0,
        "attempt": 1,
        "start": 0,
        "end": 12,
        "lease_id": "lease-1",
        "lease_amount": 10**12,
        "template": template(),
        "seed_key": "seed-data/u/s.jsonl",
        "seed_count": len(SEEDS),
    }
    fields.update(overrides)
    return m.GeneratePartition(**fields)


def usage_cost(usage: tuple[m.StepUsage, ...]) -> int:
    return sum(PRICING.cost(u.model_id, u.input_tokens, u.output_tokens) for u in usage)


async def run(msg: m.GeneratePartition, rt: GeneratorRuntime) -> list[m.Message]:
    published: list[m.Message] = []

    async def publish(message: m.Message) -> None:
        published.append(message)

    await run_partition(msg, rt, publish)
    return published


class TestGeneratePartition:
    async def test_writes_parts_and_completes_with_the_whole_usage(self) -> None:
        storage, models, msg = FakeStorage(), FakeModels(), command()
        events = await run(msg, runtime(storage, models))
        parts = [e for e in events if isinstance(e, m.RecordsGenerated)]
        end = events[-1]
        assert isinstance(end, m.PartitionCompleted)
        assert end.outcome is m.PartitionOutcome.DONE
        assert (end.records_done, end.records_missing) == (12, 0)
        assert end.message_id == end_message_id(msg.message_id)
        assert [p.part_key.rsplit("/", 1)[1] for p in parts] == [
            "0000000000.jsonl",
            "0000000005.jsonl",
            "0000000010.jsonl",
        ]
        assert [p.records for p in parts] == [5, 5, 2]
        assert len(models.requests) == 24
        assert usage_cost(end.usage) == sum(usage_cost(p.usage) for p in parts)
        body, meta = storage.parts[parts[0].part_key]
        assert meta.message == parts[0].message_id
        lines = [decode_line(line) for line in body.splitlines()]
        assert [r.index for r in lines] == [0, 1, 2, 3, 4]
        assert lines[0].outputs["a"].startswith("answer to About topic")

    async def test_request_carries_metadata_and_inference_config(self) -> None:
        models = FakeModels()
        await run(command(end=1), runtime(FakeStorage(), models))
        request = models.requests[0]
        assert request.max_tokens == 20
        assert request.metadata["job_id"] == "job-1"
        assert request.metadata["record"] == "0"
        assert request.metadata["lease_id"] == "lease-1"

    async def test_redelivery_reannounces_parts_without_calling_the_model(self) -> None:
        storage = FakeStorage()
        first = await run(command(), runtime(storage, FakeModels()))
        models = FakeModels()
        again = await run(command(), runtime(storage, models))
        assert models.requests == []
        ids = sorted(e.message_id for e in first if isinstance(e, m.RecordsGenerated))
        assert sorted(e.message_id for e in again if isinstance(e, m.RecordsGenerated)) == ids
        end = again[-1]
        assert isinstance(end, m.PartitionCompleted)
        assert end.outcome is m.PartitionOutcome.DONE
        assert usage_cost(end.usage) == usage_cost(first[-1].usage)  # type: ignore[attr-defined]

    async def test_a_new_lease_only_generates_what_is_missing(self) -> None:
        storage = FakeStorage()
        await run(command(end=5), runtime(storage, FakeModels()))
        models = FakeModels()
        events = await run(command(lease_id="lease-2"), runtime(storage, models))
        assert not any(e.lease_id == "lease-1" for e in events)  # type: ignore[attr-defined]
        assert len(models.requests) == 14
        end = events[-1]
        assert isinstance(end, m.PartitionCompleted)
        assert end.records_done == 12

    async def test_never_spends_more_than_the_lease(self) -> None:
        one_call = 200 * PRICE.input_picos + 30 * PRICE.output_picos
        lease = 3 * one_call  # less than the 12 records cost
        storage, models = FakeStorage(), FakeModels()
        events = await run(command(lease_amount=lease), runtime(storage, models, concurrency=8))
        end = events[-1]
        assert isinstance(end, m.PartitionCompleted)
        assert end.outcome is m.PartitionOutcome.LEASE_EXHAUSTED
        assert usage_cost(end.usage) <= lease
        assert end.needed > 0
        assert end.records_done + end.records_missing == 12
        assert end.records_done == sum(
            e.records for e in events if isinstance(e, m.RecordsGenerated)
        )

    async def test_stopped_job_makes_no_call(self) -> None:
        models = FakeModels()
        events = await run(
            command(), runtime(FakeStorage(), models, FakeJobs(m.JobStatus.CANCELLED))
        )
        assert models.requests == []
        end = events[-1]
        assert isinstance(end, m.PartitionCompleted)
        assert end.outcome is m.PartitionOutcome.JOB_STOPPED

    async def test_stop_broadcast_prevents_every_later_call(self) -> None:
        models = FakeModels()
        rt = runtime(FakeStorage(), models, concurrency=2)
        stopped_at: list[int] = []

        def stop_after(calls: int) -> None:
            if calls == 5:
                rt.stops.stop("job-1", m.JobStatus.CANCELLED)
                stopped_at.append(calls)

        models.on_call = stop_after
        events = await run(command(), rt)
        # At most the calls already in flight (one per slot) may complete after the stop.
        assert len(models.requests) <= 5 + 1
        end = events[-1]
        assert isinstance(end, m.PartitionCompleted)
        assert end.outcome is m.PartitionOutcome.JOB_STOPPED

    async def test_closed_lease_makes_no_call(self) -> None:
        models = FakeModels()
        events = await run(command(), runtime(FakeStorage(), models, leases=FakeLeases(True)))
        assert models.requests == []
        assert isinstance(events[-1], m.PartitionCompleted)
        assert events[-1].outcome is m.PartitionOutcome.LEASE_EXHAUSTED

    async def test_seed_without_a_template_variable_fails_before_any_call(self) -> None:
        models = FakeModels()
        events = await run(command(template=template("{{ nope }}")), runtime(FakeStorage(), models))
        assert models.requests == []
        end = events[-1]
        assert isinstance(end, m.PartitionFailed)
        assert not end.retryable
        assert "nope" in end.error

    async def test_unknown_model_fails_before_any_call(self) -> None:
        models = FakeModels()
        msg = command(template=template(model="no.such-model"))
        events = await run(msg, runtime(FakeStorage(), models))
        assert models.requests == []
        end = events[-1]
        assert isinstance(end, m.PartitionFailed)
        assert not end.retryable
        assert "no.such-model" in end.error

    async def test_retries_throttling_then_succeeds(self) -> None:
        throttled = ModelCallError("429", retryable=True, maybe_billed=False)
        models = FakeModels([throttled, throttled])
        events = await run(command(end=1), runtime(FakeStorage(), models))
        assert len(models.requests) == 4
        end = events[-1]
        assert isinstance(end, m.PartitionCompleted)
        assert end.outcome is m.PartitionOutcome.DONE
        assert sum(u.calls for u in end.usage) == 2

    async def test_fails_retryably_after_the_last_attempt(self) -> None:
        throttled = ModelCallError("429", retryable=True, maybe_billed=False)
        models = FakeModels([throttled] * 3)
        events = await run(command(end=1), runtime(FakeStorage(), models))
        assert len(models.requests) == 3
        end = events[-1]
        assert isinstance(end, m.PartitionFailed)
        assert end.retryable
        # Errors without a throttling code: three attempts, two of them made again.
        assert end.retries == m.RetryCounts(throttled=0, retried=2)

    async def test_a_model_throttling_every_call_for_too_long_pauses_the_attempt(self) -> None:
        throttled = ModelCallError(
            "429", retryable=True, code="ThrottlingException", maybe_billed=False
        )
        models = FakeModels([throttled] * 100_000)
        rt = runtime(FakeStorage(), models)
        rt.settings = rt.settings.model_copy(update={"model_unavailable_seconds": 0.2})
        events = await run(command(end=3), rt)
        end = events[-1]
        assert isinstance(end, m.PartitionCompleted), end
        assert end.outcome is m.PartitionOutcome.MODEL_UNAVAILABLE
        assert MODEL in end.reason
        assert "throttled every call" in end.reason
        assert (end.records_done, end.records_missing, end.usage) == (0, 3, ())
        assert end.retries.throttled == len(models.requests) > 3  # waited out, then paused
        assert end.unknown_calls == ()

    async def test_throttled_and_retried_attempts_go_with_the_part_and_the_end(self) -> None:
        throttled = ModelCallError("429", retryable=True, code="ThrottlingException")
        unavailable = ModelCallError("503", retryable=True, code="ServiceUnavailableException")
        # Step a: throttled, unavailable, answered; step b: throttled, answered.
        models = FakeModels([throttled, unavailable, None, throttled])
        storage = FakeStorage()
        events = await run(command(end=1), runtime(storage, models))
        parts = [e for e in events if isinstance(e, m.RecordsGenerated)]
        end = events[-1]
        assert isinstance(end, m.PartitionCompleted)
        counts = parts[0].retries
        assert (counts.throttled, counts.retried) == (2, 3)
        assert [p.retries for p in parts] == [counts]
        assert end.retries == counts
        # The part keeps its counts, so a redelivery re-announces them.
        again = await run(command(end=1), runtime(storage, FakeModels()))
        reannounced = [e for e in again if isinstance(e, m.RecordsGenerated)]
        assert [p.retries for p in reannounced] == [counts]
        assert again[-1].retries == counts

    async def test_a_call_that_may_be_billed_keeps_its_reservation(self) -> None:
        worst_a = (len(b"About topic 0") + 32) * PRICE.input_picos + 20 * PRICE.output_picos
        timeout = ModelCallError("timeout", retryable=True, maybe_billed=True)
        models = FakeModels([timeout])
        # Room for the held reservation and little else: the retry cannot fit.
        events = await run(
            command(end=1, lease_amount=worst_a + worst_a // 2), runtime(FakeStorage(), models)
        )
        assert len(models.requests) == 1
        end = events[-1]
        assert isinstance(end, m.PartitionCompleted)
        assert end.outcome is m.PartitionOutcome.LEASE_EXHAUSTED
        # The call whose answer never came is reported by id with its worst case.
        assert end.unknown_calls == (models.requests[0].metadata["call_id"],)
        assert end.unknown_worst == worst_a

    async def test_unknown_calls_of_a_retried_record_are_all_reported(self) -> None:
        dropped = ModelCallError("connection dropped", retryable=True, maybe_billed=True)
        throttled = ModelCallError("throttled", retryable=True, maybe_billed=False)
        models = FakeModels([dropped, throttled, None, dropped])
        events = await run(command(end=2), runtime(FakeStorage(), models, concurrency=1))
        end = events[-1]
        assert isinstance(end, m.PartitionCompleted)
        assert end.outcome is m.PartitionOutcome.DONE
        ids = [r.metadata["call_id"] for r in models.requests]
        assert end.unknown_calls == (ids[0], ids[3])
        assert end.unknown_worst > 0
        # The answered calls are in the usage, the unknown ones are not.
        assert sum(u.calls for u in end.usage) == len(models.requests) - 3

    async def test_every_call_carries_a_unique_call_id_and_the_holder(self) -> None:
        models = FakeModels()
        claim = ClaimHandle("holder-7", ttl_seconds=60)
        published: list[m.Message] = []

        async def publish(message: m.Message) -> None:
            published.append(message)

        await run_partition(command(end=3), runtime(FakeStorage(), models), publish, claim)
        ids = {r.metadata["call_id"] for r in models.requests}
        assert len(ids) == len(models.requests) == 6
        assert {r.metadata["holder"] for r in models.requests} == {"holder-7"}

    async def test_takeover_from_a_lost_holder_spends_nothing_and_names_it(self) -> None:
        storage = FakeStorage()
        first = await run(command(end=12), runtime(storage, FakeModels()))
        del storage.parts[keys.part_key("job-1", 10)]  # the lost holder's last part never landed
        models = FakeModels()
        claim = ClaimHandle("new-holder", ttl_seconds=60, lost_holder="dead-holder")
        published: list[m.Message] = []

        async def publish(message: m.Message) -> None:
            published.append(message)

        await run_partition(command(end=12), runtime(storage, models), publish, claim)
        assert models.requests == []
        announced = [e.message_id for e in published if isinstance(e, m.RecordsGenerated)]
        before = [e.message_id for e in first if isinstance(e, m.RecordsGenerated)]
        assert announced == before[:2]
        end = published[-1]
        assert isinstance(end, m.PartitionFailed)
        assert end.retryable
        assert end.lost_holder == "dead-holder"
        assert "dead-holder" in end.error
        assert usage_cost(end.usage) == sum(
            usage_cost(e.usage) for e in published if isinstance(e, m.RecordsGenerated)
        )

    async def test_a_claim_that_may_have_lapsed_starts_no_call(self) -> None:
        models = FakeModels()
        lapsed = ClaimHandle("holder", ttl_seconds=1.0, since=time.monotonic() - 5)
        published: list[m.Message] = []

        async def publish(message: m.Message) -> None:
            published.append(message)

        await run_partition(command(), runtime(FakeStorage(), models), publish, lapsed)
        assert models.requests == []
        end = published[-1]
        assert isinstance(end, m.PartitionFailed)
        assert end.retryable
        assert end.lost_holder is None
        assert "lapsed" in end.error

    async def test_shutdown_finishes_records_in_flight_and_fails_retryably(self) -> None:
        models = FakeModels()
        rt = runtime(FakeStorage(), models, concurrency=2)

        def drain_after(calls: int) -> None:
            if calls == 4:
                rt.draining = True

        models.on_call = drain_after
        events = await run(command(), rt)
        end = events[-1]
        assert isinstance(end, m.PartitionFailed)
        assert end.retryable
        assert "shutting down" in end.error
        assert len(models.requests) % 2 == 0  # no record was left half-made
        written = sum(e.records for e in events if isinstance(e, m.RecordsGenerated))
        assert written == len(models.requests) // 2

    async def test_records_that_waited_are_written_while_a_call_is_slow(self) -> None:
        """A slow call holds no finished record back longer than part_flush_seconds."""
        slow = asyncio.Event()

        class SlowFirstRecord(FakeModels):
            async def converse(self, request: ModelRequest) -> ModelResult:
                if request.metadata["record"] == "0" and request.metadata["step"] == "a":
                    await slow.wait()
                return await super().converse(request)

        storage, models = FakeStorage(), SlowFirstRecord()
        published: list[m.Message] = []

        async def publish(message: m.Message) -> None:
            published.append(message)

        msg = command()
        rt = runtime(storage, models, concurrency=4, part_flush_seconds=0.05, part_size=100)
        task = asyncio.create_task(run_partition(msg, rt, publish))
        await wait_until_async(
            lambda: sum(e.records for e in published if isinstance(e, m.RecordsGenerated)) == 11,
            what="11 records published",
            timeout=5,
            interval=0.01,
        )
        early = [e for e in published if isinstance(e, m.RecordsGenerated)]
        assert not task.done()
        assert sum(e.records for e in early) == 11  # all but record 0, still in its call
        assert all(not e.part_key.endswith("0000000000.jsonl") for e in early)
        slow.set()
        await task
        parts = [e for e in published if isinstance(e, m.RecordsGenerated)]
        assert parts[-1].part_key.endswith("0000000000.jsonl")
        assert parts[-1].records == 1
        covered = sorted(
            decode_line(line).index
            for body, _ in storage.parts.values()
            for line in body.splitlines()
        )
        assert covered == list(range(12))
        end = published[-1]
        assert isinstance(end, m.PartitionCompleted)
        assert (end.records_done, end.records_missing) == (12, 0)
        assert usage_cost(end.usage) == sum(usage_cost(p.usage) for p in parts)

    async def test_fast_records_fill_parts_to_the_generators_own_part_size(self) -> None:
        # A command of an older scheduler may still carry a part size: it is not read.
        storage = FakeStorage()
        msg = command(end=30, part_size=3)
        events = await run(msg, runtime(storage, FakeModels(), part_size=10))
        parts = [e for e in events if isinstance(e, m.RecordsGenerated)]
        assert [p.records for p in parts] == [10, 10, 10]

    async def test_records_of_one_seed_share_its_checked_first_prompt(self) -> None:
        models, msg = FakeModels(), command(end=30)
        events = await run(msg, runtime(FakeStorage(), models))
        assert isinstance(events[-1], m.PartitionCompleted)
        first = [r for r in models.requests if r.metadata["step"] == "a"]
        assert len(first) == 30
        for request in first:
            seed = seed_index(msg.job_id, int(request.metadata["record"]), len(SEEDS))
            assert request.prompt == f"About {SEEDS[seed]['topic']}"

    async def test_a_first_step_that_draws_by_chance_renders_for_each_record(self) -> None:
        models, msg = FakeModels(), command(end=30, template=chance_template())
        await run(msg, runtime(FakeStorage(), models))
        by_seed: dict[int, set[str]] = {}
        for request in models.requests:
            seed = seed_index(msg.job_id, int(request.metadata["record"]), len(SEEDS))
            by_seed.setdefault(seed, set()).add(request.prompt)
        shared = [prompts for prompts in by_seed.values() if len(prompts) > 1]
        assert shared, "records that share a seed drew the same prompt"
        assert sum(len(p) for p in by_seed.values()) == 30

    async def test_a_record_that_draws_by_chance_draws_the_same_when_run_again(self) -> None:
        runs = []
        for _ in range(2):
            models = FakeModels()
            await run(command(end=30, template=chance_template()), runtime(FakeStorage(), models))
            runs.append({r.metadata["record"]: r.prompt for r in models.requests})
        assert len(runs[0]) == 30
        assert runs[0] == runs[1]

    @pytest.mark.parametrize(("kept_chars", "record_renders"), [(4_000_000, 0), (0, 30)])
    async def test_first_steps_kept_within_their_size_limit(
        self, monkeypatch: pytest.MonkeyPatch, kept_chars: int, record_renders: int
    ) -> None:
        monkeypatch.setattr(partition, "FIRST_STEP_CHARS_KEPT", kept_chars)
        rendered: list[str] = []
        models, msg = FakeModels(), command(end=30)
        rt = runtime(FakeStorage(), models)
        real = rt.renderer.render

        async def counting(source: str, context: Any, **kwargs: Any) -> str:
            text = await real(source, context, **kwargs)
            if kwargs.get("field") == "steps[0].prompt":
                rendered.append(text)
            return text

        monkeypatch.setattr(rt.renderer, "render", counting)
        await run(msg, rt)
        distinct_seeds = {seed_index(msg.job_id, i, len(SEEDS)) for i in range(30)}
        assert len(rendered) == len(distinct_seeds) + record_renders
        for request in (r for r in models.requests if r.metadata["step"] == "a"):
            seed = seed_index(msg.job_id, int(request.metadata["record"]), len(SEEDS))
            assert request.prompt == f"About {SEEDS[seed]['topic']}"


def made_steps(storage: FakeStorage) -> list[tuple[int, str]]:
    """(record, step) of every output in a part or an incomplete object."""
    lines = [line for body, _ in storage.parts.values() for line in body.splitlines()]
    lines += list(storage.incomplete.values())
    return sorted((r.index, step) for r in map(decode_line, lines) for step in r.outputs)


def called_steps(models: FakeModels) -> list[tuple[int, str]]:
    return sorted((int(r.metadata["record"]), r.metadata["step"]) for r in models.requests)


class TestIncompleteRecords:
    async def test_a_stopped_record_keeps_the_outputs_it_paid_for(self) -> None:
        class StopDuringRecordThree(FakeModels):
            async def converse(self, request: ModelRequest) -> ModelResult:
                if (request.metadata["record"], request.metadata["step"]) == ("3", "a"):
                    rt.stops.stop("job-1", m.JobStatus.CANCELLED)
                return await super().converse(request)

        storage, models = FakeStorage(), StopDuringRecordThree()
        rt = runtime(storage, models, concurrency=2)
        events = await run(command(), rt)
        end = events[-1]
        assert isinstance(end, m.PartitionCompleted)
        assert end.outcome is m.PartitionOutcome.JOB_STOPPED
        # Every call made reached a file, exactly once.
        assert made_steps(storage) == called_steps(models)
        kept = {i: decode_line(body) for i, body in storage.incomplete.items()}
        assert 3 in kept
        assert (kept[3].complete, set(kept[3].outputs)) == (False, {"a"})
        assert all(not r.complete and set(r.outputs) == {"a"} for r in kept.values())
        written = sum(e.records for e in events if isinstance(e, m.RecordsGenerated))
        finished = {i for i, step in called_steps(models) if step == "b"}
        assert end.records_done == written == len(finished)
        assert set(kept).isdisjoint(finished)
        assert sum(u.calls for u in end.usage) == len(models.requests)

    async def test_a_later_attempt_resumes_an_incomplete_record_without_calling_again(
        self,
    ) -> None:
        storage = FakeStorage()
        earlier = FinishedRecord(
            index=2,
            seed_index=seed_index("job-1", 2, len(SEEDS)),
            outputs={"a": "made before"},
            models={"a": MODEL},
            usage={"a": (5, 6)},
            complete=False,
        )
        storage.put_incomplete("job-1", earlier)
        models = FakeModels()
        events = await run(command(end=5, lease_id="lease-2"), runtime(storage, models))
        end = events[-1]
        assert isinstance(end, m.PartitionCompleted)
        assert (end.outcome, end.records_done) == (m.PartitionOutcome.DONE, 5)
        assert (2, "a") not in called_steps(models)
        assert (2, "b") in called_steps(models)
        assert len(models.requests) == 9
        # This attempt reports only its own calls; the record's first step is in its part.
        assert sum(u.calls for u in end.usage) == 9
        [resumed] = [
            r
            for body, _ in storage.parts.values()
            for r in map(decode_line, body.splitlines())
            if r.index == 2
        ]
        assert (resumed.complete, resumed.outputs["a"], resumed.usage["a"]) == (
            True,
            "made before",
            (5, 6),
        )
        assert resumed.outputs["b"].startswith("answer to More on made before")
        assert storage.incomplete == {}  # written complete: its incomplete object is gone
