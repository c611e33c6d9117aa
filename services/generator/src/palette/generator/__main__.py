"""``python -m palette.generator`` (or ``palette-generator``): run the generator.

The service is imported when it runs, not with this module: a render process
(``rendering.py``) starts a fresh interpreter that imports the console script,
and needs none of it.
"""

from __future__ import annotations


def main() -> None:
    """Configure logging, tracing and metrics; run the service until it is signalled to stop."""
    from palette.common.service import run_service
    from palette.generator.app import SERVICE, create_app
    from palette.generator.settings import GeneratorSettings

    settings = GeneratorSettings()
    run_service(SERVICE, settings, lambda: create_app(settings))


if __name__ == "__main__":
    main()
