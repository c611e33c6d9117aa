"""The emulator's control API under ``/_emulator/`` (``palette.devstack.bedrock_emulator``).

Reads and changes the live emulator: configuration, billing and throttle logs,
stats, quotas and their usage, the invocation log, batch jobs. No model call here.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from pydantic import ValidationError

from palette.devstack.eventlog import EventLog
from palette.devstack.httpd import Request, Response, json_response
from palette.devstack.quota_buckets import REASONS

if TYPE_CHECKING:
    from palette.devstack.bedrock_emulator import BedrockEmulator

CONTROL_PREFIX = "/_emulator/"


class EmulatorControl:
    """The control routes of one emulator."""

    def __init__(self, emulator: BedrockEmulator) -> None:
        self.e = emulator

    def __call__(self, method: str, route: str, request: Request) -> Response:
        """Answer one control request (``route``: the path after ``/_emulator/``)."""
        action = {
            ("GET", "health"): self._health,
            ("GET", "config"): self._get_config,
            ("POST", "config"): self._set_config,
            ("PUT", "config"): self._set_config,
            ("PATCH", "config"): self._set_config,
            ("GET", "billing"): self._get_billing,
            ("DELETE", "billing"): self._clear_billing,
            ("GET", "billing/summary"): self._billing_summary,
            ("GET", "stats"): self._get_stats,
            ("DELETE", "stats"): self._clear_stats,
            ("GET", "quotas"): self._get_quotas,
            ("GET", "quotas/usage"): self._get_usage,
            ("POST", "quotas/drain"): self._drain,
            ("DELETE", "quotas/usage"): lambda _r: json_response(
                200, {"cleared": self.e.usage.clear()}
            ),
            ("GET", "throttles"): self._get_throttles,
            ("DELETE", "throttles"): self._clear_throttles,
            ("GET", "invocation-log"): self._invocation_log,
            ("POST", "invocation-log/flush"): self._flush_invocation_log,
            ("GET", "batch"): self._batch_status,
        }.get((method, route))
        if action is None:
            return json_response(404, {"message": f"no route {method} {CONTROL_PREFIX}{route}"})
        return action(request)

    def _batch_status(self, request: Request) -> Response:
        return json_response(200, self.e.batch.status() if self.e.batch else {"submissions": 0})

    def _health(self, request: Request) -> Response:
        return json_response(200, {"status": "ok", "models": sorted(self.e.models)})

    def _get_config(self, request: Request) -> Response:
        return json_response(200, self.e.faults.snapshot())

    def _set_config(self, request: Request) -> Response:
        try:
            patch = request.json()
            if not isinstance(patch, dict):
                raise TypeError("the body must be a JSON object")
            config = self.e.faults.update(patch)
        except (ValueError, TypeError, ValidationError) as exc:
            return json_response(400, {"message": str(exc)})
        self.e.quotas.configure(config.quotas, time.monotonic())
        return json_response(200, self.e.faults.snapshot())

    def _get_billing(self, request: Request) -> Response:
        return _log_entries(self.e.billing, request)

    def _clear_billing(self, request: Request) -> Response:
        return json_response(200, {"cleared": self.e.billing.clear()})

    def _billing_summary(self, request: Request) -> Response:
        return json_response(200, self.e.billing.summary(dict(request.query)))

    def _get_stats(self, request: Request) -> Response:
        quota = {f"quota_{reason}": self.e.quota_stats[reason] for reason in REASONS}
        return json_response(200, {"requests": sum(self.e.stats.values()), **self.e.stats, **quota})

    def _clear_stats(self, request: Request) -> Response:
        self.e.stats.clear()
        self.e.quota_stats.clear()
        return json_response(200, {})

    def _get_quotas(self, request: Request) -> Response:
        return json_response(200, self.e.quotas.status(time.monotonic()))

    def _drain(self, request: Request) -> Response:
        model_id = str(request.json().get("model_id", ""))
        if not self.e.quotas.enforced(model_id):
            return json_response(404, {"message": f"no quota enforced on {model_id!r}"})
        self.e.quotas.drain(model_id, time.monotonic())
        return json_response(200, self.e.quotas.status(time.monotonic()))

    def _get_usage(self, request: Request) -> Response:
        query = dict(request.query)
        rows = self.e.usage.rows(query.get("model_id"), int(query.get("since", "0")))
        return json_response(200, rows)

    def _get_throttles(self, request: Request) -> Response:
        return _log_entries(self.e.throttles, request)

    def _clear_throttles(self, request: Request) -> Response:
        return json_response(200, {"cleared": self.e.throttles.clear()})

    def _invocation_log(self, request: Request) -> Response:
        if self.e.invocations is None:
            return json_response(200, {"enabled": False})
        return json_response(200, {"enabled": True, **self.e.invocations.status()})

    def _flush_invocation_log(self, request: Request) -> Response:
        if self.e.invocations is None:
            return json_response(409, {"message": "invocation logging is off"})
        return json_response(200, {"delivered": self.e.invocations.flush()})


def _log_entries(log: EventLog, request: Request) -> Response:
    """``?offset=N`` and ``requestMetadata`` pairs select a log's entries."""
    metadata = dict(request.query)
    offset = int(metadata.pop("offset", "0"))
    return json_response(200, log.entries(offset, metadata))
