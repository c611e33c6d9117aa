"""``python -m palette.gateway`` (console script ``palette-gateway``): serve the API."""

from __future__ import annotations

import uvicorn

from palette.common.heap import freeze_startup_heap
from palette.common.observability import setup
from palette.gateway.app import create_app
from palette.gateway.auth import insecure_start
from palette.gateway.settings import GatewaySettings


def main() -> None:
    """Run the gateway on ``settings.host``:``settings.port``.

    Exits non-zero with one line on stderr, before listening, when it would
    listen beyond this machine with the public development JWT secret.
    """
    settings = GatewaySettings()
    problem = insecure_start(settings)
    if problem is not None:
        raise SystemExit(f"palette-gateway: {problem}")
    setup("gateway", settings)
    app = create_app(settings)
    app.on_startup.append(freeze_startup_heap)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        lifespan="on",
        loop="uvloop",  # as the other services (palette.common.service.run_service)
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
