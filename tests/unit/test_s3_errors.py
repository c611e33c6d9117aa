"""One reading of an S3 error as "no such object", shared by every service."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from palette.common.clients import is_missing

pytestmark = pytest.mark.unit


def error(code: str, operation: str = "GetObject") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "..."}}, operation)


class TestIsMissing:
    @pytest.mark.parametrize(
        ("code", "operation"),
        [
            ("NoSuchKey", "GetObject"),
            ("NoSuchBucket", "GetObject"),
            ("404", "HeadObject"),
            ("NotFound", "HeadObject"),
        ],
    )
    def test_codes_of_an_absent_object_are_missing(self, code: str, operation: str) -> None:
        assert is_missing(error(code, operation))

    @pytest.mark.parametrize("code", ["AccessDenied", "403", "SlowDown", "InternalError", ""])
    def test_other_errors_are_not(self, code: str) -> None:
        assert not is_missing(error(code))

    def test_an_error_without_a_code_is_not(self) -> None:
        assert not is_missing(ClientError({}, "HeadObject"))
