"""S3 object keys: they depend only on owner, job and record index."""

from __future__ import annotations

import re

from palette.common.messages import OutputFormat

_PART = re.compile(r"/parts/(\d{10})\.jsonl$")
_INCOMPLETE = re.compile(r"/incomplete/(\d{10})\.json$")


def seed_prefix(owner: str) -> str:
    """Prefix under which a user's seed files live."""
    return f"seed-data/{owner}/"


def record_id(job_id: str, index: int) -> str:
    """Id of record ``index`` of a job."""
    return f"{job_id}-{index}"


def parts_prefix(job_id: str) -> str:
    """Prefix of a job's part objects."""
    return f"jobs/{job_id}/parts/"


def part_key(job_id: str, part_start: int) -> str:
    """Key of the part holding records ``[part_start, part_start + part_size)``."""
    return f"{parts_prefix(job_id)}{part_start:010d}.jsonl"


def part_start(key: str) -> int:
    """The first record index of a part key."""
    match = _PART.search(key)
    if not match:
        raise ValueError(f"not a part key: {key}")
    return int(match.group(1))


def incomplete_prefix(job_id: str) -> str:
    """Prefix of a job's incomplete records (some steps made, the rest never ran)."""
    return f"jobs/{job_id}/incomplete/"


def incomplete_key(job_id: str, index: int) -> str:
    """Key of record ``index``'s incomplete object (one record, rewritten as it grows)."""
    return f"{incomplete_prefix(job_id)}{index:010d}.json"


def incomplete_index(key: str) -> int:
    """The record index of an incomplete record's key."""
    match = _INCOMPLETE.search(key)
    if not match:
        raise ValueError(f"not an incomplete record key: {key}")
    return int(match.group(1))


def export_key(job_id: str, fmt: OutputFormat) -> str:
    """Key of a job's exported dataset."""
    return f"jobs/{job_id}/export/dataset.{fmt.value}"


def rejected_key(dataset_key: str) -> str:
    """Key of the rejected records beside a dataset (or a snapshot): JSONL, whatever its format."""
    folder, _, name = dataset_key.rpartition("/")
    return f"{folder}/{name.rsplit('.', 1)[0]}.rejected.jsonl"


def mongo_field(name: str) -> str:
    """Encode a name (a model id has dots) for use as a MongoDB field name."""
    return name.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def from_mongo_field(field: str) -> str:
    """Decode a field name written by ``mongo_field``."""
    return field.replace("%2E", ".").replace("%24", "$").replace("%25", "%")


def snapshot_key(job_id: str, tag: str, fmt: OutputFormat) -> str:
    """Key of a job's snapshot: a partial export (``tag`` = records done) or ``final``."""
    return f"jobs/{job_id}/snapshots/{tag}.{fmt.value}"


def job_prefix(job_id: str) -> str:
    """Prefix of every S3 object of a job (parts, export, snapshots)."""
    return f"jobs/{job_id}/"


def invocation_logs_root(prefix: str) -> str:
    """Where Bedrock's model invocation logs start under their configured key prefix."""
    base = prefix.strip("/")
    return f"{base}/AWSLogs/" if base else "AWSLogs/"


def invocation_log_folder(prefix: str, account: str, region: str) -> str:
    """Prefix of one account's and region's invocation logs (then ``yyyy/mm/dd/HH/``)."""
    return f"{invocation_logs_root(prefix)}{account}/BedrockModelInvocationLogs/{region}/"
