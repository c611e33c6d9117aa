"""A job's target: records generated, or records kept after its filters. Pure logic, no I/O.

``target: "generated"`` (the default) makes ``num_records`` records, whatever its
``keep_if`` and ``dedup`` reject. ``target: "kept"`` keeps generating until
``num_records`` records are kept, the budget runs out, or ``max_generated``
records (3 x ``num_records`` by default) have been generated.

How it stays independent of timing: record ``i`` is the same whenever it is
made (its seed, variables and prompt are functions of the job id and ``i``),
and what is kept is decided in index order (the first of duplicates by index),
so the dataset is the first ``num_records`` records by index that pass; records
generated beyond them that would pass too are rejected as ``surplus``. The
scheduler plans records in waves of new indexes ``[planned, planned + more)``:
when every partition of a wave is done, the export counts the records kept
exactly, and if that is short of ``num_records`` (and ``max_generated`` allows)
the next wave is sized from the keep rate so far (``more_records``). Which
records end up in the dataset depends on the data only; timing only changes
how many surplus records were paid for.
"""

from __future__ import annotations

from typing import Literal

Target = Literal["generated", "kept"]
GENERATED: Target = "generated"
KEPT: Target = "kept"
MAX_GENERATED_FACTOR = 3
"""``max_generated`` of a ``kept`` job that names none: this many times ``num_records``."""
MAX_GENERATED = 3_000_000
"""The largest ``max_generated`` (3 x the largest ``num_records``)."""
SURPLUS = "surplus"
"""The reason of a record that passes every filter after ``num_records`` were kept."""
MARGIN_TENTHS = 11
"""A wave plans 10 % more than the keep rate so far says it needs: fewer waves."""


def max_generated(target: Target, num_records: int, given: int | None) -> int | None:
    """The job's cap on records generated (None for a ``generated`` job)."""
    if target != KEPT:
        return None
    return given if given is not None else MAX_GENERATED_FACTOR * num_records


def target_problem(target: Target, num_records: int, given: int | None) -> str | None:
    """What is wrong with a job's ``target`` and ``max_generated`` (None: nothing)."""
    if given is None:
        return None
    if target != KEPT:
        return 'max_generated applies to target "kept" only'
    if given < num_records:
        return f"max_generated ({given}) must be at least num_records ({num_records})"
    return None


def keep_limit(target: Target, num_records: int) -> int | None:
    """How many records a dataset keeps at most (None: every record that passes)."""
    return num_records if target == KEPT else None


def shortfall(num_records: int, kept: int, generated: int, cap: int) -> str | None:
    """Why a ``kept`` job that completed kept fewer than ``num_records`` (None: it did not).

    A running ``kept`` job completes short of its target only when ``max_generated``
    leaves no room for another wave; a stopped one says why in its own status.
    """
    if kept >= num_records:
        return None
    return (
        f"short of target: kept {kept} of {num_records} records; max_generated ({cap}) "
        f"allowed no more than the {generated} records generated"
    )


def more_records(num_records: int, planned: int, kept: int, cap: int) -> int:
    """How many new record indexes the next wave plans (0: none, the job is done).

    Args:
        num_records: records to keep.
        planned: record indexes planned so far (``[0, planned)``, all generated).
        kept: records the filters kept of them (counted by the export).
        cap: ``max_generated``.
    """
    missing = num_records - kept
    room = cap - planned
    if missing <= 0 or room <= 0:
        return 0
    # At the keep rate so far, plus the margin (exact integers); none kept yet: double.
    wanted = -(-missing * planned * MARGIN_TENTHS // (kept * 10)) if kept else max(planned, missing)
    return max(1, min(wanted, room))
