"""``python -m palette.generator`` (or ``palette-generator``): run the generator."""

from __future__ import annotations

import asyncio

from palette.common.logging import configure_logging
from palette.generator.app import SERVICE, build_app
from palette.generator.settings import GeneratorSettings


def main() -> None:
    """Configure logging and run the service until it is signalled to stop."""
    settings = GeneratorSettings()
    configure_logging(SERVICE, settings.log_level, settings.log_json)
    asyncio.run(build_app(settings).run())


if __name__ == "__main__":
    main()
