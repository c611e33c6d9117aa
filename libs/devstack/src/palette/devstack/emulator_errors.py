"""Bedrock's errors in the wire form botocore's REST-JSON parser reads (runtime, control plane)."""

from __future__ import annotations

from palette.devstack.httpd import Response, json_response

ERROR_STATUS = {
    "ValidationException": 400,
    "ThrottlingException": 429,
    "ServiceUnavailableException": 503,
    "ModelTimeoutException": 408,
    "ResourceNotFoundException": 404,
    "UnknownOperationException": 404,
    "ConflictException": 409,
    "InternalServerException": 500,
}
ERROR_MESSAGES = {
    "ThrottlingException": "Too many requests, please wait before trying again.",
    "ServiceUnavailableException": "Bedrock is unable to process your request.",
    "ModelTimeoutException": "Model has timed out in processing the request. "
    "Try your request again.",
    "InternalServerException": "An internal server error occurred. Retry your request.",
}
QUOTA_MESSAGES = {
    "rpm": "Too many requests, please wait before trying again.",
    "tpm": "Too many tokens, please wait before trying again.",
    "daily": "Too many tokens per day, please wait before trying again.",
}
INVALID_MODEL = "The provided model identifier is invalid."
ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"


def error_response(code: str, message: str, request_id: str) -> Response:
    """An error in the wire form botocore's REST-JSON parser reads."""
    return json_response(
        ERROR_STATUS[code],
        {"message": message},
        [("x-amzn-RequestId", request_id), ("x-amzn-ErrorType", code + ERROR_TYPE_SUFFIX)],
    )
