"""Part lines, part metadata, usage tallies and the grouping of records into parts."""

from __future__ import annotations

import json
import random

import pytest

from palette.common.messages import StepUsage
from palette.generator.records import FinishedRecord, PartMeta, decode_line, encode_part
from palette.generator.run_assembler import RunAssembler, contiguous_runs
from palette.generator.usage import RetryTally, UsageTally
from tests.unit.gateway_fakes import ManualClock

pytestmark = pytest.mark.unit


def record(index: int) -> FinishedRecord:
    return FinishedRecord(
        index=index,
        seed_index=index % 3,
        outputs={"a": f"out ä {index}", "b": "line\nbreak"},
        models={"a": "m1", "b": "m2"},
        usage={"a": (10, 20), "b": (30, 40)},
    )


class TestContiguousRuns:
    def test_splits_at_gaps_and_at_part_size(self) -> None:
        assert contiguous_runs([0, 1, 2, 3, 4, 7, 8, 10], 3) == [
            (0, 3),
            (3, 2),
            (7, 2),
            (10, 1),
        ]

    def test_ignores_order_and_duplicates(self) -> None:
        assert contiguous_runs([5, 3, 4, 4], 10) == [(3, 3)]

    def test_empty(self) -> None:
        assert contiguous_runs([], 5) == []

    def test_rejects_a_part_size_below_one(self) -> None:
        with pytest.raises(ValueError, match="part_size"):
            contiguous_runs([1], 0)


class TestRunAssembler:
    @staticmethod
    def indices(runs: list[list[FinishedRecord]]) -> list[list[int]]:
        return [[r.index for r in run] for run in runs]

    def test_hands_out_a_full_run_as_soon_as_its_prefix_is_resolved(self) -> None:
        assembler = RunAssembler([0, 1, 2, 3], 2)
        assembler.finish(record(1))
        assert assembler.ready() == []
        assembler.finish(record(0))
        assert self.indices(assembler.ready()) == [[0, 1]]

    def test_keeps_a_short_run_open_until_the_end(self) -> None:
        assembler = RunAssembler([0, 1, 2], 5)
        for i in (0, 1):
            assembler.finish(record(i))
        assert assembler.ready() == []
        assembler.finish(record(2))
        assert self.indices(assembler.rest()) == [[0, 1, 2]]

    def test_a_dropped_record_cuts_the_run(self) -> None:
        assembler = RunAssembler([0, 1, 2, 3], 10)
        assembler.finish(record(0))
        assembler.drop(1)
        assembler.finish(record(2))
        assert self.indices(assembler.ready()) == [[0]]
        assert self.indices(assembler.rest()) == [[2]]

    def test_cuts_where_indices_are_not_consecutive(self) -> None:
        assembler = RunAssembler([0, 1, 5, 6], 10)
        for i in (0, 1, 5):
            assembler.finish(record(i))
        assert self.indices(assembler.ready()) == [[0, 1]]
        assert self.indices(assembler.rest()) == [[5]]

    def test_unresolved_indices_are_gaps_at_the_end(self) -> None:
        assembler = RunAssembler([0, 1, 2, 3, 4], 10)
        for i in (0, 1, 3, 4):
            assembler.finish(record(i))
        assert self.indices(assembler.rest()) == [[0, 1], [3, 4]]

    def test_parts_do_not_depend_on_finishing_order(self) -> None:
        order = [i for i in range(40) if i not in (7, 8, 30)]
        dropped = {12, 25}
        rng = random.Random(4)
        results = set()
        for _ in range(20):
            shuffled = order[:]
            rng.shuffle(shuffled)
            assembler = RunAssembler(order, 4)
            runs: list[list[FinishedRecord]] = []
            for i in shuffled:
                assembler.drop(i) if i in dropped else assembler.finish(record(i))
                runs += assembler.ready()
            runs += assembler.rest()
            results.add(tuple(tuple(r) for r in self.indices(runs)))
        assert len(results) == 1
        (runs_seen,) = results
        written = [i for run in runs_seen for i in run]
        assert sorted(written) == [i for i in order if i not in dropped]
        expected = contiguous_runs([i for i in order if i not in dropped], 4)
        assert [(run[0], len(run)) for run in runs_seen] == expected

    def test_resolving_twice_is_an_error(self) -> None:
        assembler = RunAssembler([0], 1)
        assembler.finish(record(0))
        with pytest.raises(ValueError, match="already resolved"):
            assembler.drop(0)


class TestRunAssemblerMaxWait:
    """Parts also close by time: a finished record waits at most ``max_wait``."""

    @staticmethod
    def indices(runs: list[list[FinishedRecord]]) -> list[list[int]]:
        return [[r.index for r in run] for run in runs]

    def test_a_short_run_leaves_once_its_oldest_record_has_waited(self) -> None:
        clock = ManualClock()
        assembler = RunAssembler(range(10), 100, max_wait=2.0, clock=clock)
        assert assembler.due() is None
        assembler.finish(record(0))
        clock.now += 1.0
        assembler.finish(record(1))
        assert assembler.ready() == []
        assert assembler.due() == 102.0
        clock.now = 101.999
        assert assembler.ready() == []
        clock.now = 102.0
        assert self.indices(assembler.ready()) == [[0, 1]]
        assert assembler.due() is None
        assembler.finish(record(2))
        assert assembler.ready() == []
        assert assembler.due() == 104.0

    def test_records_beyond_one_in_flight_leave_too_and_cut_the_runs_later(self) -> None:
        clock = ManualClock()
        assembler = RunAssembler(range(8), 100, max_wait=1.0, clock=clock)
        for i in (0, 2, 3, 5):
            assembler.finish(record(i))
        assembler.drop(4)
        assert assembler.ready() == []
        clock.now += 1.0
        assert self.indices(assembler.ready()) == [[0], [2, 3], [5]]
        assembler.finish(record(1))
        # 1 can no longer grow (2 is written): it leaves at once.
        assert self.indices(assembler.ready()) == [[1]]
        for i in (6, 7):
            assembler.finish(record(i))
        assert assembler.ready() == []
        assert self.indices(assembler.rest()) == [[6, 7]]

    def test_a_flush_keeps_runs_within_part_size(self) -> None:
        clock = ManualClock()
        assembler = RunAssembler(range(10), 3, max_wait=0.5, clock=clock)
        for i in range(1, 9):
            assembler.finish(record(i))
        clock.now += 0.5
        assert self.indices(assembler.ready()) == [[1, 2, 3], [4, 5, 6], [7, 8]]
        assembler.finish(record(0))
        assembler.finish(record(9))
        assert self.indices(assembler.rest()) == [[0], [9]]

    def test_without_max_wait_nothing_leaves_by_time(self) -> None:
        clock = ManualClock()
        assembler = RunAssembler(range(4), 10, clock=clock)
        assembler.finish(record(0))
        clock.now += 10**6
        assert assembler.due() is None
        assert assembler.ready() == []

    def test_rejects_a_negative_max_wait(self) -> None:
        with pytest.raises(ValueError, match="max_wait"):
            RunAssembler([0], 1, max_wait=-1.0)

    def test_a_written_index_cannot_be_resolved_again(self) -> None:
        clock = ManualClock()
        assembler = RunAssembler(range(3), 10, max_wait=0.0, clock=clock)
        assembler.finish(record(2))
        assert self.indices(assembler.ready()) == [[2]]
        with pytest.raises(ValueError, match="already resolved"):
            assembler.finish(record(2))

    @pytest.mark.parametrize("seed", range(30))
    def test_every_record_leaves_once_in_time_whatever_the_order(self, seed: int) -> None:
        rng = random.Random(seed)
        order = sorted(rng.sample(range(60), 45))
        dropped = set(rng.sample(order, 5))
        part_size, max_wait = rng.choice([1, 3, 7, 100]), rng.choice([0.0, 0.5, 2.0])
        clock = ManualClock()
        assembler = RunAssembler(order, part_size, max_wait=max_wait, clock=clock)
        finished_at: dict[int, float] = {}
        runs: list[list[FinishedRecord]] = []
        shuffled = order[:]
        rng.shuffle(shuffled)
        for i in shuffled:
            clock.now += rng.choice([0.0, 0.1, 0.3, 1.0])
            due = assembler.due()
            if due is not None and clock.now >= due:  # the flusher's turn comes first
                runs += assembler.ready()
            if i in dropped:
                assembler.drop(i)
            else:
                assembler.finish(record(i))
                finished_at[i] = clock.now
            for run in assembler.ready():
                assert all(clock.now - finished_at[r.index] <= max_wait + 1.0 for r in run)
                runs.append(run)
            waiting = assembler.due()
            assert waiting is None or waiting > clock.now
        runs += assembler.rest()
        written = [r.index for run in runs for r in run]
        assert sorted(written) == sorted(set(order) - dropped)
        assert len(written) == len(set(written))
        for run in runs:
            assert 1 <= len(run) <= part_size
            assert [r.index for r in run] == list(range(run[0].index, run[0].index + len(run)))


class TestPartLines:
    def test_round_trip(self) -> None:
        body = encode_part("job-1", [record(4), record(5)])
        lines = body.splitlines()
        assert len(lines) == 2
        first = json.loads(lines[0])
        assert first["id"] == "job-1-4"
        assert first["usage"] == {"a": [10, 20], "b": [30, 40]}
        assert set(first) == {
            "id",
            "index",
            "seed_index",
            "complete",
            "outputs",
            "models",
            "usage",
        }
        assert decode_line(lines[0]) == record(4)

    def test_rejects_a_line_that_is_not_a_record(self) -> None:
        with pytest.raises(ValueError, match="missing"):
            decode_line(b'{"index": 1}')
        with pytest.raises(ValueError, match="object"):
            decode_line(b"[1, 2]")

    def test_tally_counts_one_call_per_step(self) -> None:
        tally = record(1).tally()
        assert tally.to_step_usages() == (
            StepUsage(step_id="a", model_id="m1", calls=1, input_tokens=10, output_tokens=20),
            StepUsage(step_id="b", model_id="m2", calls=1, input_tokens=30, output_tokens=40),
        )


class TestCacheTokensInParts:
    """A record's cache tokens travel with it (part line, part usage), like its other tokens."""

    def cached(self) -> FinishedRecord:
        made = record(2)
        made.cached = {"a": (1200, 0), "b": (0, 900)}
        return made

    def test_the_part_line_keeps_cache_tokens_and_reads_them_back(self) -> None:
        line = json.loads(encode_part("job-1", [self.cached()]))
        assert line["cache"] == {"a": [1200, 0], "b": [0, 900]}
        assert decode_line(json.dumps(line)) == self.cached()
        assert "cache" not in json.loads(encode_part("job-1", [record(2)]))

    def test_the_part_usage_counts_them_so_a_re_announced_part_bills_them(self) -> None:
        rows = self.cached().tally().to_step_usages()
        assert [
            (u.step_id, u.calls, u.input_tokens, u.cache_read_tokens, u.cache_write_tokens)
            for u in rows
        ] == [("a", 1, 10, 1200, 0), ("b", 1, 30, 0, 900)]
        meta = PartMeta(1, "lease-1", "msg-1", self.cached().tally())
        assert PartMeta.from_metadata(meta.to_metadata()).usage == self.cached().tally()

    def test_a_resumed_record_keeps_cache_tokens_of_steps_it_carries_out_of_its_usage(
        self,
    ) -> None:
        stopped = self.cached()
        stopped.complete = False
        resumed = stopped.resumed()
        assert resumed.cached == stopped.cached
        assert resumed.tally().calls == 0


class TestInvalidRecords:
    def test_an_invalid_record_round_trips_with_its_step_and_error(self) -> None:
        made = record(3)
        made.invalid = {"step": "b", "error": "step 'b': no valid output in 3 calls: x"}
        line = json.loads(encode_part("job-1", [made]))
        assert line["invalid"] == made.invalid
        assert decode_line(json.dumps(line)) == made

    def test_invalid_answers_round_trip_and_go_on_with_a_resumed_record(self) -> None:
        stopped = FinishedRecord(index=4, seed_index=1, complete=False)
        stopped.invalid_answers = {"grade": 2}
        line = json.loads(encode_part("job-1", [stopped]))
        assert line["invalid_answers"] == {"grade": 2}
        assert decode_line(json.dumps(line)) == stopped
        assert stopped.resumed().invalid_answers == {"grade": 2}
        assert "invalid_answers" not in json.loads(encode_part("job-1", [record(3)]))
        with pytest.raises(ValueError, match="invalid_answers"):
            decode_line(json.dumps({**line, "invalid_answers": {"grade": "2"}}))


class TestIncompleteRecords:
    def stopped(self) -> FinishedRecord:
        whole = record(7)
        return FinishedRecord(
            index=7,
            seed_index=whole.seed_index,
            outputs={"a": whole.outputs["a"]},
            models={"a": "m1"},
            usage={"a": (10, 20)},
            complete=False,
        )

    def test_an_incomplete_record_round_trips_flagged(self) -> None:
        line = json.loads(encode_part("job-1", [self.stopped()]))
        assert (line["complete"], line["outputs"]) == (False, {"a": "out ä 7"})
        assert decode_line(json.dumps(line)) == self.stopped()

    def test_a_line_written_before_the_flag_is_complete(self) -> None:
        line = json.loads(encode_part("job-1", [record(3)]))
        del line["complete"]
        assert decode_line(json.dumps(line)).complete is True

    def test_a_flag_that_is_not_a_boolean_is_refused(self) -> None:
        line = {**json.loads(encode_part("job-1", [record(3)])), "complete": "no"}
        with pytest.raises(ValueError, match="complete"):
            decode_line(json.dumps(line))

    def test_a_resumed_record_carries_its_outputs_but_not_their_usage(self) -> None:
        resumed = self.stopped().resumed()
        assert (resumed.index, resumed.outputs, resumed.complete) == (7, {"a": "out ä 7"}, True)
        assert resumed.carried == frozenset({"a"})
        assert not resumed.made_calls
        assert resumed.tally().calls == 0
        resumed.outputs["b"] = "made now"
        resumed.models["b"] = "m2"
        resumed.usage["b"] = (30, 40)
        assert resumed.made_calls
        assert resumed.tally().to_step_usages() == (
            StepUsage(step_id="b", model_id="m2", calls=1, input_tokens=30, output_tokens=40),
        )
        assert resumed.line("job-1")["usage"] == {"a": [10, 20], "b": [30, 40]}


class TestPartMetadata:
    def test_round_trip(self) -> None:
        usage = UsageTally()
        usage.add("a", "anthropic.claude-haiku-4-5-20251001-v1:0", 100, 200, calls=3)
        meta = PartMeta(records=3, lease="lease-1", message="abc", usage=usage)
        encoded = meta.to_metadata()
        assert encoded["records"] == "3"
        assert json.loads(encoded["usage"]) == [
            ["a", "anthropic.claude-haiku-4-5-20251001-v1:0", 3, 100, 200]
        ]
        assert all(value.isascii() for value in encoded.values())
        assert PartMeta.from_metadata(encoded) == meta

    def test_retry_counts_round_trip_and_a_part_without_them_has_none(self) -> None:
        meta = PartMeta(
            records=1, lease="l", message="m", usage=UsageTally(), retries=RetryTally(4, 3, 250)
        )
        encoded = meta.to_metadata()
        assert encoded["retries"] == "4,3,250"
        assert PartMeta.from_metadata(encoded).retries == RetryTally(4, 3, 250)
        # A part written before the time waited was counted has two counts.
        encoded["retries"] = "4,3"
        assert PartMeta.from_metadata(encoded).retries == RetryTally(4, 3)
        del encoded["retries"]
        assert PartMeta.from_metadata(encoded).retries == RetryTally(0, 0)

    @pytest.mark.parametrize("text", ["", "1", "1,2,3,4", "-1,0", "a,b", "1, 2"])
    def test_bad_retry_counts_are_refused(self, text: str) -> None:
        metadata = {"records": "1", "lease": "l", "message": "m", "usage": "[]", "retries": text}
        with pytest.raises(ValueError, match="retry counts"):
            PartMeta.from_metadata(metadata)

    @pytest.mark.parametrize(
        "metadata",
        [
            {"records": "1", "lease": "l", "message": "m"},
            {"records": "0", "lease": "l", "message": "m", "usage": "[]"},
            {"records": "1", "lease": "l", "message": "m", "usage": '[["a", "m", -1, 0, 0]]'},
            {"records": "1", "lease": "l", "message": "m", "usage": "{}"},
        ],
    )
    def test_rejects_bad_metadata(self, metadata: dict[str, str]) -> None:
        with pytest.raises(ValueError, match=r"usage|records|lacks"):
            PartMeta.from_metadata(metadata)


class TestUsageTally:
    def test_merges_by_step_and_model(self) -> None:
        tally = UsageTally()
        tally.add("a", "m", 1, 2)
        other = UsageTally()
        other.add("a", "m", 10, 20)
        other.add("b", "m", 5, 5)
        tally.merge(other)
        assert tally.to_step_usages()[0] == StepUsage(
            step_id="a", model_id="m", calls=2, input_tokens=11, output_tokens=22
        )
        assert tally.calls == 3

    def test_take_empties_the_tally(self) -> None:
        tally = UsageTally()
        tally.add("a", "m", 1, 2)
        moved = tally.take()
        assert not tally
        assert moved.calls == 1


class TestUsageAtItsOwnRate:
    def test_a_row_billed_at_its_own_rate_keeps_it_through_encoding_and_messages(self) -> None:
        tally = UsageTally()
        tally.add("q", "m", 10, 5)
        tally.add("q", "m", 7, 3, rate="default")
        decoded = UsageTally.decode(tally.encode())
        assert decoded == tally
        rows = decoded.to_step_usages("batch")
        assert [(r.service_tier, r.input_tokens) for r in rows] == [("batch", 10), ("default", 7)]

    def test_cost_prices_each_row_at_its_rate(self) -> None:
        from palette.common.pricing import PricingTable
        from palette.common.service_tiers import rated_table

        table = PricingTable.load()
        model = "amazon.nova-pro-v1:0"
        tally = UsageTally()
        tally.add("q", model, 1000, 100)
        tally.add("q", model, 1000, 100, rate="default")
        batch = rated_table(table, "batch")
        expected = batch.cost(model, 1000, 100) + table.cost(model, 1000, 100)
        assert tally.cost(batch, table) == expected
