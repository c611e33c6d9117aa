"""A small client of the Bedrock emulator's control API (``/_emulator/...``)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any, cast
from urllib.parse import urlencode


class EmulatorControl:
    """Reads and changes a running emulator's configuration, quotas, logs and stats.

    Args:
        url: the control URL, e.g. ``http://127.0.0.1:8600/_emulator``
            (``DevStack.emulator_control_url`` or ``PALETTE_EMULATOR_URL``).
        timeout: seconds per request.
    """

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, route: str, body: Any = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(  # noqa: S310 - a local http URL we were given
            f"{self.url}/{route}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
            return json.loads(response.read() or b"null")

    def health(self) -> dict[str, Any]:
        """``{"status": "ok", "models": [...]}``."""
        return cast(dict[str, Any], self._call("GET", "health"))

    def config(self) -> dict[str, Any]:
        """The live configuration (with what is left of the fault script)."""
        return cast(dict[str, Any], self._call("GET", "config"))

    def configure(self, **changes: Any) -> dict[str, Any]:
        """Change some fields of the configuration, e.g. ``configure(throttle_rate=0.1)``.

        Raises:
            urllib.error.HTTPError: 400 when the result is not a valid configuration.
        """
        return cast(dict[str, Any], self._call("POST", "config", changes))

    def reset(self) -> dict[str, Any]:
        """Restore the configuration the emulator started with (and its seed)."""
        return cast(dict[str, Any], self._call("POST", "config", {"reset": True}))

    def billing(self, offset: int = 0, **metadata: str) -> list[dict[str, Any]]:
        """Billed calls from ``offset`` on, oldest first.

        Args:
            offset: skip this many calls (of all calls, before filtering).
            **metadata: only calls whose ``requestMetadata`` has these pairs.
        """
        return self._entries("billing", offset, metadata)

    def _entries(self, route: str, offset: int, metadata: dict[str, str]) -> list[dict[str, Any]]:
        query = urlencode({"offset": offset, **metadata})
        return cast(list[dict[str, Any]], self._call("GET", f"{route}?{query}"))

    def billing_summary(self, **metadata: str) -> dict[str, Any]:
        """Billed calls and tokens, in total and per model (of calls with ``metadata``)."""
        query = urlencode(metadata)
        return cast(dict[str, Any], self._call("GET", f"billing/summary?{query}"))

    def clear_billing(self) -> int:
        """Forget the billed calls; returns how many there were."""
        return int(self._call("DELETE", "billing")["cleared"])

    def stats(self) -> dict[str, int]:
        """Model calls per outcome (``ok``, each fault, ``ValidationException``)."""
        return cast(dict[str, int], self._call("GET", "stats"))

    def reset_stats(self) -> None:
        """Zero the per-outcome counts."""
        self._call("DELETE", "stats")

    def set_quota(
        self,
        model_id: str,
        *,
        rpm: float | None = None,
        tpm: float | None = None,
        tpd: float | None = None,
        output_burndown: int | None = None,
    ) -> dict[str, Any]:
        """Enforce these quotas on ``model_id`` from now on (None: that one is not enforced).

        ``tpd`` None means ``tpm x 1,440``; ``output_burndown`` None the quota table's.
        """
        limits = {"rpm": rpm, "tpm": tpm, "tpd": tpd, "output_burndown": output_burndown}
        return self.configure(quotas={model_id: limits})

    def remove_quota(self, model_id: str) -> dict[str, Any]:
        """Stop enforcing any quota on ``model_id``."""
        return self.configure(quotas={model_id: None})

    def clear_quotas(self) -> dict[str, Any]:
        """Stop enforcing every quota."""
        return self.configure(quotas=None)

    def quotas(self) -> dict[str, Any]:
        """Per model id: the quotas enforced and each bucket's level now."""
        return cast(dict[str, Any], self._call("GET", "quotas"))

    def quota_usage(self, model_id: str | None = None, since: int = 0) -> dict[str, Any]:
        """Per quota'd model id, one row per second from ``since`` (epoch seconds) on.

        Each row: ``t``, ``admitted``, ``throttled``, ``reserved``, ``used`` (quota
        tokens of the requests admitted that second) and ``tpm_level_min``.
        """
        query = urlencode({"since": since, **({"model_id": model_id} if model_id else {})})
        return cast(dict[str, Any], self._call("GET", f"quotas/usage?{query}"))

    def drain_quota(self, model_id: str) -> dict[str, Any]:
        """Empty ``model_id``'s quota buckets now (as if the account had used them up).

        Raises:
            urllib.error.HTTPError: 404 when no quota is enforced on it.
        """
        return cast(dict[str, Any], self._call("POST", "quotas/drain", {"model_id": model_id}))

    def clear_quota_usage(self) -> int:
        """Forget the per-second quota rows; returns how many there were."""
        return int(self._call("DELETE", "quotas/usage")["cleared"])

    def throttles(self, offset: int = 0, **metadata: str) -> list[dict[str, Any]]:
        """Calls throttled for a quota from ``offset`` on, oldest first.

        Each has ``model_id``, ``at``, ``reason`` (rpm, tpm, daily), ``tokens`` asked
        and ``request_metadata``; ``**metadata`` selects by the latter.
        """
        return self._entries("throttles", offset, metadata)

    def clear_throttles(self) -> int:
        """Forget the throttled calls; returns how many there were."""
        return int(self._call("DELETE", "throttles")["cleared"])

    def batch_jobs(self) -> dict[str, Any]:
        """Batch inference jobs: ``submissions`` (jobs created) and ``jobs`` (each one's view)."""
        return cast(dict[str, Any], self._call("GET", "batch"))

    def invocation_log(self) -> dict[str, Any]:
        """Where the model invocation logs go and how delivery went (``enabled`` false: off)."""
        return cast(dict[str, Any], self._call("GET", "invocation-log"))

    def flush_invocation_log(self) -> int:
        """Deliver the queued invocation log records now; returns how many went out."""
        return int(self._call("POST", "invocation-log/flush", {})["delivered"])


def emulator_flags(options: dict[str, Any]) -> list[str]:
    """The emulator's command-line flags for ``options`` (``latency_ms`` → ``--latency-ms``).

    Lists are comma-separated, maps JSON.
    """
    argv: list[str] = []
    for name, value in options.items():
        if isinstance(value, list | tuple):
            text = ",".join(value)
        elif isinstance(value, dict):
            text = json.dumps(value)
        else:
            text = str(value)
        argv += ["--" + name.replace("_", "-"), text]
    return argv
