"""Bodies of ``/seed-data``: uploads, presigned upload tickets and validation reports."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

from palette.common.seeds import SeedFormat
from palette.gateway.schemas.base import PosInt, Reply, Request, VersionNumber


class SeedUpload(Reply):
    """Answer of ``POST /seed-data``."""

    key: str = Field(description="S3 key to pass as a job's `seed_key`.")
    records: int
    format: SeedFormat
    bytes: int


class UploadRequest(Request):
    """Body of ``POST /seed-data/uploads``."""

    filename: Annotated[
        str,
        Field(
            min_length=1,
            max_length=1000,
            description="File name; its extension (.json, .jsonl, .csv) sets the format.",
        ),
    ]
    bytes: PosInt = Field(description="Exact size of the file to upload, in bytes.")


class UploadTicket(Reply):
    """A presigned PUT: send the file's bytes to `url` with exactly `headers`."""

    key: str = Field(description="The S3 key the file lands at (the caller's prefix).")
    url: str
    method: str = "PUT"
    headers: dict[str, str]
    expires_at: datetime
    max_bytes: int


class ValidateSeeds(Request):
    """Body of ``POST /seed-data/validate``."""

    key: Annotated[str, Field(min_length=1, max_length=1024)]
    template_id: Annotated[str, Field(min_length=1, max_length=200)]
    template_version: VersionNumber | None = Field(None, description="Latest version when omitted.")


class MissingExample(Reply):
    """A record that lacks fields the template needs."""

    record: int = Field(description="Record number, counted from 1.")
    missing: list[str]


class ParseProblem(Reply):
    """Where a seed file stops being readable."""

    problem: str
    line: int | None = None
    record: int | None = None


class SeedValidation(Reply):
    """Answer of ``POST /seed-data/validate``: every record checked, streaming."""

    key: str
    format: SeedFormat | None = Field(description="Null when the file's start is unreadable.")
    template_id: str
    template_version: int
    schema_requirements: list[str]
    valid: bool = Field(description="Readable to the end, and no record lacks a field.")
    records_checked: int
    records_missing_fields: int
    examples: list[MissingExample] = Field(description="The first few records lacking fields.")
    parse_error: ParseProblem | None = Field(
        None,
        description="Where the file stops being readable: null in a 200 answer; a file that "
        "cannot be read is a 422 problem whose `report` member has it.",
    )
