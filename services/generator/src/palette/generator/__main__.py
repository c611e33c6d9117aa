"""``python -m palette.generator`` (or ``palette-generator``): run the generator."""

from __future__ import annotations

from palette.common.service import run_service
from palette.generator.app import SERVICE, build_app
from palette.generator.settings import GeneratorSettings


def main() -> None:
    """Configure logging, tracing and metrics; run the service until it is signalled to stop."""
    settings = GeneratorSettings()
    run_service(SERVICE, settings, lambda: build_app(settings))


if __name__ == "__main__":
    main()
