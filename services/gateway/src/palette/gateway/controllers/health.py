"""Liveness and readiness."""

from __future__ import annotations

import asyncio

from litestar import Controller, get
from litestar.di import NamedDependency

from palette.gateway.openapi import problems
from palette.gateway.ports import GatewayRuntime
from palette.gateway.problems import Problem, field_error
from palette.gateway.schemas import Health


class HealthController(Controller):
    """``/health`` (the process is up) and ``/ready`` (its dependencies answer)."""

    tags = ["health"]
    opt = {"exclude_from_auth": True}
    security = [{}]  # OpenAPI: no credentials needed

    @get("/health", operation_id="getHealth", summary="Liveness: the process answers")
    async def health(self) -> Health:
        """200 while the process runs; checks nothing else."""
        return Health(status="ok")

    @get(
        "/ready",
        operation_id="getReady",
        summary="Readiness: broker and database answer",
        responses={503: problems(503)[503]},
    )
    async def ready(self, runtime: NamedDependency[GatewayRuntime]) -> Health:
        """200 when the broker and the database answer, else a 503 problem naming each failure."""
        timeout = runtime.settings.ready_timeout_seconds
        checks: dict[str, str] = {}
        try:
            ok = await asyncio.wait_for(runtime.publisher.ping(), timeout)
            checks["broker"] = "ok" if ok else "not connected"
        except TimeoutError:
            checks["broker"] = "not connected"
        except Exception as exc:
            checks["broker"] = f"error: {type(exc).__name__}"
        try:
            await asyncio.wait_for(runtime.repository.ping(), timeout)
            checks["database"] = "ok"
        except TimeoutError:
            checks["database"] = "not answering"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        failed = {name: state for name, state in checks.items() if state != "ok"}
        if failed:
            raise Problem(
                503,
                "not ready: " + ", ".join(f"{name} {state}" for name, state in failed.items()),
                errors=[field_error(name, state) for name, state in failed.items()],
                headers={"Retry-After": "2"},
            )
        return Health(status="ready", checks=checks)
