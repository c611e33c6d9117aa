"""``python -m palette.accounting``: run the accounting service."""

from __future__ import annotations

from palette.accounting.app import create_app
from palette.accounting.settings import AccountingSettings
from palette.common.service import run_service


def main() -> None:
    """Run the accounting service until stopped."""
    settings = AccountingSettings()
    run_service("accounting", settings, lambda: create_app(settings))


if __name__ == "__main__":
    main()
