"""The benchmark harness's pure logic: statistics, targets, the table, JSON and docs page."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import statistics

import pytest

from bench import quota, stats
from bench.figures.overshoot import budget_fractions
from bench.figures.stops import latency_figure
from bench.plan import FIGURES, FULL, QUICK, parse_figures, table_position
from bench.profiling import frame_name, summarize
from bench.quota_change_sim import Simulation
from bench.report import (
    RESULTS_END,
    RESULTS_START,
    Figure,
    Run,
    Target,
    render_markdown,
    render_table,
    update_doc,
)
from palette.generator.pacing import AimdParams

pytestmark = pytest.mark.unit


class TestStatistics:
    def test_median_of_an_odd_and_an_even_count(self) -> None:
        assert stats.median([3.0, 1.0, 2.0]) == 2.0
        assert stats.median([4.0, 1.0, 3.0, 2.0]) == 2.5

    def test_nearest_rank_p99_of_twenty_samples_is_their_maximum(self) -> None:
        values = [float(v) for v in range(1, 21)]
        assert stats.percentile(values, 99) == 20.0
        assert stats.percentile(values, 50) == 10.0
        assert stats.percentile(values, 5) == 1.0

    def test_nearest_rank_never_interpolates(self) -> None:
        assert stats.percentile([10.0, 20.0], 50) == 10.0
        assert stats.percentile([10.0, 20.0], 51) == 20.0
        assert stats.percentile([7.0], 99) == 7.0

    @pytest.mark.parametrize("q", [0, -1, 100.5])
    def test_refuses_a_percentile_outside_its_range(self, q: float) -> None:
        with pytest.raises(ValueError, match="outside"):
            stats.percentile([1.0], q)

    def test_refuses_no_values(self) -> None:
        with pytest.raises(ValueError, match="no values"):
            stats.percentile([], 50)
        with pytest.raises(ValueError, match="no values"):
            stats.median([])

    def test_ratio_refuses_a_zero_denominator(self) -> None:
        assert stats.ratio(3.0, 2.0) == 1.5
        with pytest.raises(ValueError, match="divide"):
            stats.ratio(1.0, 0.0)

    def test_mean_in_flight_counts_only_the_window(self) -> None:
        intervals = [(0.0, 2.0), (1.0, 3.0), (5.0, 6.0)]
        # In [1, 3): the first is open 1 s, the second 2 s.
        assert stats.mean_in_flight(intervals, 1.0, 3.0) == pytest.approx(1.5)
        assert stats.mean_in_flight(intervals, 3.0, 5.0) == 0.0
        with pytest.raises(ValueError, match="positive length"):
            stats.mean_in_flight(intervals, 2.0, 2.0)


class TestTargets:
    @pytest.mark.parametrize(
        ("target", "value", "met"),
        [
            (Target(">=", 0.95), 0.95, True),
            (Target(">=", 0.95), 0.949, False),
            (Target("<=", 25), 25.0, True),
            (Target("<=", 25), 25.01, False),
            (Target("==", 0), 0.0, True),
            (Target("==", 0), 1.0, False),
            (Target("==", 0), -1.0, False),
        ],
    )
    def test_comparisons(self, target: Target, value: float, met: bool) -> None:
        assert target.met_by(value) is met

    def test_a_figure_not_measured_misses_its_target(self) -> None:
        assert Target("<=", 25).met_by(None) is False
        assert Target(">=", 1).met_by(math.nan) is False

    def test_a_reported_figure_has_no_verdict(self) -> None:
        assert Target("report").met_by(123.0) is None
        assert Figure("export speed", 5.0, Target("report")).verdict == "-"

    def test_describe(self) -> None:
        assert Target(">=", 0.95).describe() == ">= 0.95"
        assert Target("<=", 25).describe("ms") == "<= 25 ms"
        assert Target("report").describe("ms") == "report"


class TestFigures:
    def test_a_broken_measurement_misses_whatever_its_value(self) -> None:
        figure = Figure("quota efficiency", 0.99, Target(">=", 0.95), broken="job FAILED")
        assert (figure.passed, figure.verdict, figure.shown_value()) == (False, "FAIL", "0.99")
        assert Figure("x", 1.0, Target("report"), broken="job FAILED").passed is None

    def test_verdicts_and_values(self) -> None:
        passing = Figure("throughput efficiency", 0.97, Target(">=", 0.95))
        failing = Figure("gateway latency p99", 31.25, Target("<=", 25), unit="ms")
        missing = Figure("platform overhead", None, Target("<=", 1.5))
        assert (passing.verdict, failing.verdict, missing.verdict) == ("pass", "FAIL", "FAIL")
        assert failing.shown_value() == "31.2 ms"
        assert missing.shown_value() == "not measured"
        assert Figure("x", 4500.0, Target("report")).shown_value() == "4500"

    def test_json_of_a_figure(self) -> None:
        figure = Figure(
            "stop latency",
            120.0,
            Target("<=", 250),
            unit="ms",
            runs=[100.0, 120.0],
            details={"stops": 2},
            note="DELETE",
        )
        assert figure.to_dict() == {
            "name": "stop latency",
            "value": 120.0,
            "unit": "ms",
            "target": "<= 250 ms",
            "passed": True,
            "runs": [100.0, 120.0],
            "details": {"stops": 2},
            "note": "DELETE",
            "broken": "",
        }
        assert Figure("x", math.nan, Target("<=", 1)).to_dict()["value"] is None


def sample_run(errors: list[str] | None = None) -> Run:
    return Run(
        mode="full",
        machine={"cpu_model": "AMD EPYC", "cores": 2, "memory_gib": 23.5, "python": "3.11.7"},
        started_at="2026-11-24T15:00:00+00:00",
        duration_s=512.3,
        figures=[
            Figure("throughput efficiency", 0.97, Target(">=", 0.95), note="2,000 records"),
            Figure("gateway latency p99", 31.25, Target("<=", 25), unit="ms"),
            Figure("export speed, csv", 25000.0, Target("report"), unit="records/s"),
        ],
        errors=errors or [],
        seconds={"throughput": 41.26},
    )


class TestRendering:
    def test_table_has_one_aligned_row_per_figure(self) -> None:
        table = render_table(sample_run().figures).splitlines()
        assert table[0].split() == ["figure", "value", "target", "result"]
        assert set(table[1].replace(" ", "")) == {"-"}
        assert len(table) == 5
        assert table[2].split("  ")[0] == "throughput efficiency"
        assert table[3].endswith("FAIL")
        assert table[4].endswith("-")
        value_column = table[0].index("value")
        assert all(row[value_column - 1] == " " for row in table[2:])

    def test_a_run_passes_only_when_every_target_is_met_and_nothing_failed(self) -> None:
        run = sample_run()
        assert not run.passed
        run.figures = [f for f in run.figures if f.passed is not False]
        assert run.passed
        run.errors = ["memory: TimeoutError"]
        assert not run.passed

    def test_json_is_serialisable_and_complete(self) -> None:
        data = json.loads(json.dumps(sample_run(["gateway: boom"]).to_json()))
        assert data["mode"] == "full"
        assert data["passed"] is False
        assert data["duration_s"] == 512.3
        assert [f["name"] for f in data["figures"]] == [
            "throughput efficiency",
            "gateway latency p99",
            "export speed, csv",
        ]
        assert data["errors"] == ["gateway: boom"]
        assert data["complete"] is True
        assert data["seconds"] == {"throughput": 41.3}

    def test_markdown_names_the_machine_and_lists_every_figure(self) -> None:
        text = render_markdown(sample_run(["memory: TimeoutError"]))
        assert "AMD EPYC, 2 cores" in text
        assert "(full, 512 s: throughput 41 s)" in text
        assert "| gateway latency p99 | 31.2 ms | <= 25 ms | FAIL |" in text
        assert "- **throughput efficiency**: 2,000 records" in text
        assert "- memory: TimeoutError" in text

    def test_update_doc_replaces_only_the_results_section(self) -> None:
        page = f"# Benchmarks\n\nintro\n\n{RESULTS_START}\nold\n{RESULTS_END}\n\nhow to read\n"
        updated = update_doc(page, "new table")
        assert updated == (
            f"# Benchmarks\n\nintro\n\n{RESULTS_START}\nnew table\n{RESULTS_END}\n\nhow to read\n"
        )
        assert update_doc(updated, "newer") == updated.replace("new table", "newer")

    def test_update_doc_refuses_a_page_without_markers(self) -> None:
        with pytest.raises(ValueError, match="markers"):
            update_doc("# Benchmarks\n", "table")
        with pytest.raises(ValueError, match="markers"):
            update_doc(f"{RESULTS_END}\n{RESULTS_START}\n", "table")


class TestPlan:
    def test_every_figure_by_default_and_a_chosen_few_in_run_order(self) -> None:
        assert parse_figures(None) == FIGURES
        assert parse_figures("memory, throughput") == ("throughput", "memory")

    def test_refuses_an_unknown_figure(self) -> None:
        with pytest.raises(ValueError, match="unknown figures \\['speed'\\]"):
            parse_figures("throughput,speed")

    def test_rows_follow_the_benchmark_table(self) -> None:
        names = [
            "export speed, csv",
            "gateway errors",
            "platform overhead",
            "throughput efficiency",
            "scale-out, 2 generators",
            "high concurrency efficiency",
            "quota change, recovery",
            "unknown quota efficiency",
            "something else",
        ]
        assert sorted(names, key=table_position) == [
            "throughput efficiency",
            "platform overhead",
            "scale-out, 2 generators",
            "gateway errors",
            "export speed, csv",
            "quota change, recovery",
            "unknown quota efficiency",
            "high concurrency efficiency",
            "something else",
        ]

    def test_the_full_plan_has_the_target_sizes_and_the_quick_one_is_smaller(self) -> None:
        assert (FULL.throughput_records, FULL.throughput_concurrency) == (2000, 32)
        assert FULL.throughput_limit == 160.0
        assert (FULL.stops, FULL.overshoot_jobs, FULL.overshoot_concurrency) == (20, 20, 64)
        assert (FULL.memory_small, FULL.memory_large) == (10_000, 100_000)
        assert (FULL.gateway_rate, FULL.gateway_seconds) == (200.0, 20.0)
        assert QUICK.throughput_records < FULL.throughput_records
        assert QUICK.memory_large / QUICK.memory_small == FULL.memory_large / FULL.memory_small


class TestFigureHelpers:
    def test_stop_lags_before_the_stop_count_as_zero(self) -> None:
        figure = latency_figure("stop", {"a": -0.5, "b": 0.1, "c": 0.2}, "note")
        assert figure.value == pytest.approx(200.0)
        assert figure.runs == [0.0, 100.0, 200.0]
        assert figure.details["raw_lag_ms"] == {"a": -500.0, "b": 100.0, "c": 200.0}
        assert figure.passed is True

    def test_no_stops_is_not_measured(self) -> None:
        assert latency_figure("stop", {}, "note").passed is False

    def test_budget_fractions_spread_from_forty_to_sixty_percent(self) -> None:
        assert budget_fractions(1) == [0.5]
        fractions = budget_fractions(5)
        assert fractions[0] == pytest.approx(0.4)
        assert fractions[-1] == pytest.approx(0.6)
        assert fractions == sorted(fractions)


class TestProfileSummary:
    def test_frame_names_lose_their_paths_and_lines(self) -> None:
        frame = "converse (/w/.venv/lib/python3.11/site-packages/botocore/client.py:606)"
        assert frame_name(frame) == "converse (botocore/client.py)"

    def test_frame_names_lose_the_line_py_spy_gives(self) -> None:
        assert frame_name("run (scheduler/__main__.py:17)") == "run (scheduler/__main__.py)"

    def test_shares_are_inclusive_and_count_a_recursive_function_once(self) -> None:
        lines = [
            "main (a.py:1);work (b.py:2);work (b.py:3) 3",
            "main (a.py:1);idle (c.py:4) 1",
            "not a profile line",
        ]
        assert dict(summarize(lines)) == {
            "main (a.py)": 1.0,
            "work (b.py)": 0.75,
            "idle (c.py)": 0.25,
        }


def rows(*spec: tuple[int, int, int, int, float | None]) -> list[quota.Second]:
    """Seconds from (t, admitted, throttled, used, level) tuples."""
    return [quota.Second(t, a, th, u, level) for t, a, th, u, level in spec]


class TestQuotaArithmetic:
    TPM = 6_000.0  # 100 tokens a second

    def test_a_client_that_drains_the_full_bucket_is_steady_once_drained(self) -> None:
        burst = [(t, 30, 0, 3_000, 6_000 - 3_000.0 * (t + 1) + 100 * t) for t in range(2)]
        paced = [(t, 1, 1, 100, 50.0) for t in range(2, 40)]
        seconds = rows(*burst, *paced)
        window = quota.steady_window(seconds, self.TPM)
        assert window is not None
        # drained at once: the skip, then the burst's calls in flight
        assert window.start == quota.SKIP_SECONDS + quota.SETTLE_SECONDS
        assert quota.efficiency(seconds, window, self.TPM) == pytest.approx(1.0)
        assert quota.throttled_share(seconds, window) == pytest.approx(0.5)

    def test_a_client_that_paces_from_the_start_is_steady_after_the_skip(self) -> None:
        seconds = rows(*[(t, 1, 0, 90, 5_900.0) for t in range(60)])
        window = quota.steady_window(seconds, self.TPM)
        skipped = quota.SKIP_SECONDS + quota.SETTLE_SECONDS
        assert window == quota.Window(skipped, 58)  # the last 3 % left out
        assert quota.efficiency(seconds, window, self.TPM) == pytest.approx(0.9)

    def test_steady_begins_where_the_level_settles(self) -> None:
        falling = [(t, 2, 0, 150, 6_000.0 - 500 * t) for t in range(10)]
        settled = [(t, 1, 0, 100, 800.0) for t in range(10, 50)]
        window = quota.steady_window(rows(*falling, *settled), self.TPM)
        assert window is not None
        # 1,500 at 9 is above the lowest 800 + 5 % of 6,000; 800 at 10 is not
        assert window.start == 10 + quota.SETTLE_SECONDS

    def test_what_the_store_gave_up_in_the_window_is_not_pacing(self) -> None:
        draining = [(t, 3, 0, 300, 1_000.0 - 200 * t) for t in range(5)]  # 200 a second drawn
        seconds = rows(*draining)
        window = quota.Window(0, 5)
        assert quota.drawn_from_store(seconds, window) == 800
        assert quota.used_per_minute(seconds, window) == 18_000
        assert quota.efficiency(seconds, window, self.TPM) == pytest.approx((300 - 160) / 100)
        later = quota.Window(2, 5)  # from the level just before it: 800 - 200
        assert quota.drawn_from_store(seconds, later) == 600

    def test_no_calls_no_window(self) -> None:
        assert quota.steady_window(rows((0, 0, 3, 0, 0.0)), self.TPM) is None

    def test_rows_from_the_emulator(self) -> None:
        parsed = quota.seconds(
            [
                {"t": 9, "admitted": 1, "throttled": 0, "reserved": 9, "used": 5,
                 "tpm_level_min": None},
                {"t": 8, "admitted": 2, "throttled": 1, "reserved": 9, "used": 7,
                 "tpm_level_min": 3.5},
            ]
        )  # fmt: skip
        assert parsed == rows((8, 2, 1, 7, 3.5), (9, 1, 0, 5, None))
        assert quota.attempts(parsed) == (1, 4)

    def test_recovery_is_when_the_rest_of_the_phase_stays_under_the_bound(self) -> None:
        storm = [(t, 10, 40, 0, 0.0) for t in range(100, 104)]
        calm = [(t, 50, 0, 0, 0.0) for t in range(104, 130)]
        phase = quota.Window(100, 130)
        assert quota.recovery_seconds(rows(*storm, *calm), phase, 0.02) == 4
        assert quota.recovery_seconds(rows(*calm), phase, 0.02) == 0

    def test_never_recovered_and_silence_is_not_recovery(self) -> None:
        phase = quota.Window(0, 20)
        stormy = rows(*[(t, 10, 5, 0, 0.0) for t in range(20)])
        assert quota.recovery_seconds(stormy, phase, 0.02) is None
        silent = rows((0, 1, 5, 0, 0.0))
        assert quota.recovery_seconds(silent, phase, 0.02) is None


class TestQuotaChangeSimulation:
    """The bench's quota change on a simulated clock (``bench.quota_change_sim``)."""

    @staticmethod
    @functools.cache
    def outcomes(params: AimdParams) -> tuple[list[int], float]:
        """Each seed's recovery from the halving, and the median climb after the restore."""
        runs = [Simulation(seed, params).run(40, 30, 60) for seed in range(10)]
        halvings = [30 if r.halved is None else r.halved for r in runs]
        return halvings, statistics.median(r.climb for r in runs)

    def test_generators_sharing_a_quota_recover_from_its_halving_within_10_s(self) -> None:
        """Four generators throttled together each learn a ceiling above its part of the halved
        quota; recovering fast to 0.9 of it took them over the quota again and again (median
        14 s over these seeds, 3 of 10 within 10 s). ``near_shared`` recovers them to 0.8."""
        halvings, _ = self.outcomes(AimdParams())
        assert statistics.median(halvings) <= 10, halvings
        assert sum(1 for h in halvings if h <= 10) >= 7, halvings
        before, _ = self.outcomes(dataclasses.replace(AimdParams(), near_shared=0.9))
        assert statistics.median(before) > 10, before

    def test_they_climb_back_once_the_quota_is_raised_again(self) -> None:
        """Recovering only to 0.8 leaves more to probe: at 0.3 % a second the four used 0.55 of
        the restored quota in its first minute (0.73 recovering to 0.9). A probe that meets
        no throttle for 15 s grows (``probe_grace``): 0.80."""
        _, climb = self.outcomes(AimdParams())
        assert climb >= 0.75, climb
        _, slow = self.outcomes(dataclasses.replace(AimdParams(), probe_grace=math.inf))
        assert slow < 0.65, slow
