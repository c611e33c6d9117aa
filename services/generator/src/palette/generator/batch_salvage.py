"""Batch jobs no attempt applied: the job's export gives their outputs to the records.

A batch inference job bills every entry it ran, and the lease it was submitted
under pays for it (``batch_run``; accounting counts a held lease's jobs,
``palette.accounting.lease_batches``). Its outputs reach the records only when
an attempt follows it to its end: the one that submitted it, or a retry of the
partition that resumes it. When none does (the submitting attempt died or
failed and no retry followed: the job was cancelled, or its budget had no lease
left for one), the job's export applies it first (``apply_unapplied``). The
export runs only once no lease of the job is open, and a lease that holds a
batch job closes only once that job has ended: so each has.

Each answered entry gives its record that step's output, unless the record is
in a part or has that step already (the first answer wins, as in an attempt):
merged into the record's incomplete object, or a new one that draws the
record's seed and variables as any attempt does (``seed_draws``). Jobs are taken
oldest first, so a record's later step lands on its earlier one. A record that
so has every step is complete (exported as such, from its incomplete object).
The submissions are then marked applied: an export run again finds nothing to
do, and one cut before that writes the same outputs again.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
from collections.abc import Sequence

import structlog

from palette.common import keys
from palette.common.batch_jobs import ENDED
from palette.common.output_schema import OutputInvalidError
from palette.generator.batch_store import BatchClient, Submission
from palette.generator.bedrock import parse_response
from palette.generator.records import FinishedRecord
from palette.generator.runtime import GeneratorRuntime
from palette.generator.seed_draws import SeedDraws, load_draws
from palette.generator.storage import Storage
from palette.generator.structured import StructuredOutput, for_step

log = structlog.get_logger("palette.generator.batch")


class Salvage:
    """The blocking side (run in a thread): the job's parts, outputs and incomplete records."""

    def __init__(
        self,
        storage: Storage,
        client: BatchClient,
        draws: SeedDraws,
        steps: dict[str, StructuredOutput | None],
    ) -> None:
        self.storage = storage
        self.client = client
        self.draws = draws
        self.job_id = draws.job_id
        self.steps = steps
        """Each step, and how its answers are read (``structured.for_step``; None: text)."""
        self.starts = [keys.part_start(key) for key in storage.part_keys(self.job_id)]
        self.sizes: dict[int, int] = {}
        self.records: dict[int, FinishedRecord] = {}
        self.changed: set[int] = set()

    def covered(self, index: int) -> bool:
        """Whether record ``index`` is in a part (the part starting last at or before it)."""
        at = bisect.bisect_right(self.starts, index) - 1
        if at < 0:
            return False
        first = self.starts[at]
        if first not in self.sizes:
            meta = self.storage.head_part(keys.part_key(self.job_id, first))
            self.sizes[first] = meta.records if meta is not None else 0
        return index < first + self.sizes[first]

    def apply(self, submission: Submission) -> bool:
        """Apply one submission's answered entries; False while its job has not ended."""
        todo = [i for i in submission.records if not self.covered(i)]
        arn = submission.arn or (self.client.find(submission.token) if todo else None)
        if not todo or arn is None:  # nothing to give, or never created
            return True
        status = self.client.status(arn)["status"]
        if status not in ENDED:
            log.warning("batch_not_ended_at_export", arn=arn, status=status)
            return False
        lines, _ = self.client.output_of(dataclasses.replace(submission, arn=arn))
        self.load(todo)
        wanted = set(todo)
        parser = self.steps[submission.step]
        for line in lines:
            index = int(line.get("recordId", "-1"))
            output = line.get("modelOutput")
            if output is None or index not in wanted:
                continue
            record = self.records[index]
            if submission.step in record.outputs:
                continue
            result = parse_response(output)
            try:
                value = parser.parse(result.text, result.tool_input) if parser else result.text
            except OutputInvalidError:
                continue  # billed (accounting counts it), but no output to give
            record.outputs[submission.step] = value
            record.models[submission.step] = submission.model_id
            record.usage[submission.step] = (result.input_tokens, result.output_tokens)
            self.changed.add(index)
        return True

    def load(self, indices: Sequence[int]) -> None:
        """The records ``indices`` not loaded yet: their incomplete object, else a new record."""
        found = self.storage.read_incomplete(self.job_id, min(indices), max(indices) + 1)
        for index in indices:
            if index not in self.records:
                drawn = self.draws.record(index, self.draws.position(index))
                self.records[index] = found.get(index) or drawn

    def write(self) -> int:
        """Write every record given an output as its incomplete object; how many."""
        for index in sorted(self.changed):
            record = self.records[index]
            record.complete = all(step in record.outputs for step in self.steps)
            self.storage.put_incomplete(self.job_id, record)
        return len(self.changed)


async def apply_unapplied(rt: GeneratorRuntime, job_id: str) -> int:
    """Give the records the outputs of the job's batch jobs no attempt applied; records written."""
    store, client = rt.batches, rt.batch_client
    if store is None or client is None:
        return 0
    pending = await store.unapplied(job_id)
    seeds = await rt.jobs.seeds_of(job_id) if pending else None
    if seeds is None:
        return 0
    draws = await load_draws(rt.storage, seeds)
    steps = {step.id: for_step(step, rt.structured) for step in seeds.template.steps}
    salvage = await asyncio.to_thread(Salvage, rt.storage, client, draws, steps)
    applied = [s.token for s in pending if await asyncio.to_thread(salvage.apply, s)]
    written = await asyncio.to_thread(salvage.write)
    await store.mark_applied(applied)
    log.info("batch_outputs_applied_at_export", submissions=len(applied), records=written)
    return written
