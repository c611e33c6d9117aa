"""One export of a finished job, in a fresh process: its speed and its peak memory.

``python -m bench.workers.export_probe --job ID --format parquet --key K`` runs
the generator's own export (``write_dataset``: parts streamed from S3, the
dataset uploaded to ``K`` in parts) and reads the process's peak RSS right
after it. With ``--compare`` it then also times, on rows already in memory,
the service's format writer alone and pyarrow writing the same table directly
(Parquet with the same compression, CSV), into memory buffers.
"""

from __future__ import annotations

import argparse
import io
import json
import resource
import sys
import time
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from pymongo import MongoClient

from palette.common.clients import s3_client
from palette.common.messages import OutputFormat
from palette.common.templates import TemplateSpec
from palette.generator.dataset_export import write_dataset
from palette.generator.format_writers import ColumnPlan, make_writer
from palette.generator.records import decode_line
from palette.generator.settings import GeneratorSettings
from palette.generator.storage import Storage


def peak_rss_mib() -> float:
    """This process's peak resident set size so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rows_in_memory(storage: Storage, job_id: str, plan: ColumnPlan) -> list[dict[str, Any]]:
    """Every record of the job's parts as a dataset row."""
    rows = []
    for key in storage.part_keys(job_id):
        with storage.open(key) as stream:
            rows += [plan.row(job_id, decode_line(line)) for line in stream if line.strip()]
    return rows


def timed(action: Any) -> float:
    """Seconds ``action()`` takes."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def compare(
    fmt: OutputFormat, rows: list[dict[str, Any]], plan: ColumnPlan, batch: int
) -> dict[str, float]:
    """Seconds of the service's writer and of pyarrow's own, both into memory."""

    def service_writer() -> None:
        writer = make_writer(fmt, io.BytesIO(), plan, batch)
        for row in rows:
            writer.write(row)
        writer.close()

    result = {"writer_s": timed(service_writer)}
    table = pa.Table.from_pylist(rows, schema=plan.schema())
    if fmt is OutputFormat.PARQUET:
        result["pyarrow_s"] = timed(
            lambda: pq.write_table(table, io.BytesIO(), compression="zstd", row_group_size=batch)
        )
    elif fmt is OutputFormat.CSV:
        result["pyarrow_s"] = timed(lambda: pacsv.write_csv(table, io.BytesIO()))
    return result


def main(argv: list[str] | None = None) -> int:
    """Export, measure, print the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", required=True)
    parser.add_argument("--format", required=True, choices=[f.value for f in OutputFormat])
    parser.add_argument("--key", required=True, help="where to write the dataset")
    parser.add_argument("--compare", action="store_true")
    args = parser.parse_args(argv)
    settings = GeneratorSettings()
    fmt = OutputFormat(args.format)
    mongo: MongoClient[dict[str, Any]] = MongoClient(settings.mongo_url)
    with mongo:
        job = mongo[settings.mongo_db]["jobs"].find_one({"_id": args.job})
    if job is None:
        raise SystemExit(f"no job {args.job}")
    steps = TemplateSpec.model_validate(job["template"]).steps
    storage = Storage(s3_client(settings), settings.s3_bucket)
    start = time.perf_counter()
    written = write_dataset(
        storage,
        args.job,
        fmt,
        steps,
        int(job["num_records"]),
        batch_rows=settings.export_batch_rows,
        part_bytes=settings.export_part_bytes,
        key=args.key,
    )
    result: dict[str, Any] = {
        "records": written.records,
        "bytes": written.bytes,
        "export_s": time.perf_counter() - start,
        "peak_rss_mib": peak_rss_mib(),
    }
    if args.compare:
        plan = ColumnPlan(steps)
        rows = rows_in_memory(storage, args.job, plan)
        result |= compare(fmt, rows, plan, settings.export_batch_rows)
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
