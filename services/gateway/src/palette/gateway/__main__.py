"""``python -m palette.gateway`` (console script ``palette-gateway``): serve the API."""

from __future__ import annotations

import uvicorn

from palette.common.heap import freeze_startup_heap
from palette.common.observability import setup
from palette.gateway.app import create_app
from palette.gateway.settings import GatewaySettings


def main() -> None:
    """Run the gateway on ``settings.host``:``settings.port``."""
    settings = GatewaySettings()
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
