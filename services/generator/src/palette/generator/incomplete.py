"""Incomplete records: the paid outputs of records whose later steps never ran.

A record an attempt started but could not finish (the job stopped, the lease
ran out, a call failed) is written alone to ``jobs/{job_id}/incomplete/
{index:010d}.json``, one part line with ``"complete": false``; a later attempt
at the same range rewrites it as it grows. A later attempt resumes such a
record at its first step not made, never calls a step again, and once the
record is written complete in a part its incomplete object is deleted. A
batch-mode record that took invalid answers is kept with their count
(``invalid_answers``) even before it has an output, so a later attempt asks it
only the calls left; the export writes no row for one that made nothing. The
export takes every record from its part, else from its incomplete object (see
docs/internals.md).
"""

from __future__ import annotations

import asyncio

import structlog

from palette.generator.records import FinishedRecord
from palette.generator.state import AttemptState

log = structlog.get_logger("palette.generator.partition")


async def keep_incomplete(state: AttemptState, record: FinishedRecord) -> None:
    """Write a record that stopped short, so the outputs it paid for reach the export."""
    try:
        await asyncio.to_thread(state.rt.storage.put_incomplete, state.msg.job_id, record)
    except Exception as exc:
        log.exception("incomplete_write_failed", record=record.index)
        state.fail(
            f"writing incomplete record {record.index} failed: {type(exc).__name__}: {exc}",
            retryable=True,
        )
        return
    log.info("incomplete_record_written", record=record.index, steps=sorted(record.outputs))


async def drop_completed(state: AttemptState, run: list[FinishedRecord]) -> None:
    """Delete the incomplete objects of resumed records now in a part (best effort).

    A record that took invalid answers may have had one with no output (batch mode).

    One left behind changes nothing: the export prefers the record's part.
    """
    resumed = [record.index for record in run if record.carried or record.invalid_answers]
    if not resumed:
        return
    try:
        await asyncio.to_thread(state.rt.storage.drop_incomplete, state.msg.job_id, resumed)
    except Exception as exc:
        log.warning("incomplete_drop_failed", records=resumed, error=f"{type(exc).__name__}: {exc}")
