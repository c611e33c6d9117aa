"""target "kept": the next wave's size, the job's fields between waves, the export's cap."""

from __future__ import annotations

import pytest

from palette.common.targets import max_generated, more_records, target_problem
from palette.scheduler import waves

pytestmark = pytest.mark.unit


class TestMoreRecords:
    def test_a_wave_plans_the_missing_records_at_the_keep_rate_with_a_margin(self) -> None:
        # 10 of 40 kept (a quarter): 90 missing need 360 more, plus 10 %.
        assert more_records(100, 40, 10, 1000) == 396

    def test_nothing_kept_yet_doubles_and_the_cap_bounds_every_wave(self) -> None:
        assert more_records(100, 100, 0, 1000) == 100
        assert more_records(100, 250, 0, 300) == 50
        assert more_records(100, 40, 10, 100) == 60

    def test_no_wave_once_enough_are_kept_or_the_cap_is_reached(self) -> None:
        assert more_records(100, 150, 100, 300) == 0
        assert more_records(100, 300, 20, 300) == 0

    def test_the_size_is_exact_in_integers(self) -> None:
        assert more_records(3, 3, 1, 100) == 7  # ceil(2 x 3 / 1 x 1.1) = ceil(6.6)


class TestTargetFields:
    def test_max_generated_defaults_to_three_times_and_only_for_kept(self) -> None:
        assert max_generated("kept", 10, None) == 30
        assert max_generated("kept", 10, 12) == 12
        assert max_generated("generated", 10, None) is None

    def test_bad_combinations_are_named(self) -> None:
        assert target_problem("kept", 10, 12) is None
        assert "at least num_records" in (target_problem("kept", 10, 9) or "")
        assert "kept" in (target_problem("generated", 10, 20) or "")


class TestWaves:
    JOB = {"num_records": 10, "target": "kept", "max_generated": 30, "planned_records": 10}

    def test_a_short_export_plans_the_next_wave_and_keeps_the_count(self) -> None:
        job = {**self.JOB, "export": {"status": "DONE", "records": 5, "incomplete": 1}}
        assert waves.more(job) == more_records(10, 10, 4, 30)
        fields = waves.next_wave_fields(job["export"], 25, 7)
        assert fields["export"] is None
        assert (fields["planned_records"], fields["partitions_total"]) == (25, 7)
        assert fields["counted"]["kept"] == 4

    def test_no_wave_for_a_generated_job_or_an_export_not_written(self) -> None:
        short = {"status": "DONE", "records": 1}
        assert waves.more({**self.JOB, "target": "generated", "export": short}) == 0
        assert waves.more({**self.JOB, "export": {"status": "PENDING"}}) == 0

    def test_a_kept_job_completing_below_its_target_says_why(self) -> None:
        job = {**self.JOB, "planned_records": 30, "export": {"records": 7, "incomplete": 1}}
        assert waves.more({**job, "export": {**job["export"], "status": "DONE"}}) == 0
        assert waves.short_of_target(job) == (
            "short of target: kept 6 of 10 records; max_generated (30) allowed no more than "
            "the 30 records generated"
        )

    def test_a_job_that_kept_its_target_or_counts_generated_is_not_short(self) -> None:
        assert waves.short_of_target({**self.JOB, "export": {"records": 10}}) is None
        generated = {**self.JOB, "target": "generated", "export": {"records": 3}}
        assert waves.short_of_target(generated) is None
