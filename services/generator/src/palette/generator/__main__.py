"""``python -m palette.generator`` (or ``palette-generator``): run the generator."""

from __future__ import annotations

import asyncio

from palette.common.observability import setup
from palette.generator.app import SERVICE, build_app
from palette.generator.settings import GeneratorSettings


def main() -> None:
    """Configure logging, tracing and metrics; run the service until it is signalled to stop."""
    settings = GeneratorSettings()
    setup(SERVICE, settings)
    asyncio.run(build_app(settings).run())


if __name__ == "__main__":
    main()
